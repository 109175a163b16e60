/* Transformer metrics: layer x head heatmaps handed over by the transformer analysis
 * (actpipe.site.heatmaps contract). */
(function () {
  "use strict";
  actpipe.page({
    name: "transformer",
    title: "Transformer metrics",
    render: function (view, route, api) {
      return api.heatmapPage(view, route, "transformer", "Transformer metrics",
        "Per layer and attention head: the metrics of the transformer analysis.");
    }
  });
})();
