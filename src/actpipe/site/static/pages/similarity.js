/* Similarity: heatmaps of representational similarity (RDMs, layer x layer CKA) handed over by
 * the similarity analysis (actpipe.site.heatmaps contract). */
(function () {
  "use strict";
  actpipe.page({
    name: "similarity",
    title: "Similarity",
    render: function (view, route, api) {
      return api.heatmapPage(view, route, "similarity", "Representational similarity",
        "Representational dissimilarity matrices and layer-by-layer similarity (e.g. CKA) between models.");
    }
  });
})();
