/* Overview: stimulus sets, models, parameter sets; per label the layer of each model whose
 * clusters agree best with it; every run; sections handed over by other pages. */
(function () {
  "use strict";

  function sectionCell(api, cell) {
    if (cell && typeof cell === "object" && typeof cell.href === "string" && /^#\/[A-Za-z0-9_.~\/?=&-]*$/.test(cell.href)) {
      return api.h("a", { href: cell.href }, String(cell.text));
    }
    if (typeof cell === "number") return api.fmt(cell);
    return cell === null || cell === undefined ? "–" : String(cell);
  }

  function samples(api, set) {
    var box = api.h("span", { class: "samples" });
    var n = Math.min(6, set.n);
    var indices = [];
    for (var i = 0; i < n; i++) indices.push(i);
    api.stimuli(set, indices).then(function (items) {
      items.forEach(function (s) {
        if (s.src) box.appendChild(api.h("img", { src: s.src, alt: s.id + (Object.keys(s.labels).length ? " (" + api.labelText(s.labels) + ")" : ""), width: 32, height: 32, loading: "lazy" }));
      });
    });
    return box;
  }

  actpipe.page({
    name: "overview",
    title: "Overview",
    render: function (view, route, api) {
      var h = api.h;
      var index = api.index;
      var info = api.pageInfo("overview") || { best: {} };
      view.appendChild(h("h1", null, index.title));
      view.appendChild(h("p", { class: "lead" },
        index.sets.length + " stimulus set(s), " + index.models.length + " model(s), " +
        index.psets.length + " parameter set(s): " + index.runs.length + " clusterings. " +
        "Open a run's cluster paths, click a cluster to see its images, click an image to see its path."));

      view.appendChild(h("h2", null, "Stimulus sets"));
      view.appendChild(api.table(
        ["set", { text: "stimuli", num: true }, "labels", "examples", "pages"],
        index.sets.map(function (set) {
          var labels = set.labels.length ? set.labels.map(function (c) { return c + " (" + set.nValues[c] + " values)"; }).join(", ") : "none (add a labels.csv)";
          var firstRun = index.runs.find(function (r) { return r.set === set.name; });
          var links = [];
          if (firstRun) links.push(api.link("cluster paths", "paths", firstRun.key.split("/")));
          if (api.hasPage("metrics")) {
            links.push(" · ");
            links.push(api.link("metrics vs depth", "metrics", [set.key]));
          }
          var similarity = api.hasPage("similarity") ? api.pageInfo("similarity") : null;
          if (similarity && similarity.sets.some(function (s) { return s.key === set.key; })) {
            links.push(" · ");
            links.push(api.link("similarity", "similarity", [set.key]));
          }
          return [set.name, api.fmt(set.n), labels, samples(api, set), h("span", null, links)];
        })));

      view.appendChild(h("h2", null, "Models"));
      view.appendChild(api.table(
        ["model", { text: "layers", num: true }, "from first to last layer"],
        index.models.map(function (m) {
          return [m.name, String(m.layers.length), m.layers.join(" → ")];
        })));

      view.appendChild(h("h2", null, "Parameter sets"));
      view.appendChild(api.table(
        ["parameter set", "method", "k", "features"],
        index.psets.map(function (p) {
          var prep = [p.params.replicates === "each" ? "every replicate" : "replicate mean"];
          if (p.params.standardize) prep.push("standardized");
          if (p.params.reduce && p.params.reduce !== "none") prep.push(p.params.reduce + " to " + p.params.n_components);
          if (p.params.input === "activations_x_gradients") prep.push("activations x gradients");
          return [p.name, p.method, p.params.k === undefined || p.params.k === null ? "–" : String(p.params.k), prep.join(", ")];
        })));

      view.appendChild(h("h2", null, "Which layer agrees best with each label"));
      view.appendChild(h("p", { class: "lead" },
        "Per label, the layer of each model and parameter set whose clusters agree best with it " +
        "(highest adjusted Rand index, ARI: 1 = the same partition, 0 = chance; NMI: normalised mutual information; " +
        "purity: share of examples in their cluster's majority label)."));
      var anyLabel = false;
      index.sets.forEach(function (set) {
        var best = info.best[set.name] || {};
        Object.keys(best).forEach(function (label) {
          anyLabel = true;
          view.appendChild(h("h3", null, set.name + ": " + label));
          view.appendChild(api.table(
            ["model", "parameter set", "best layer", "depth", { text: "ARI", num: true }, { text: "NMI", num: true }, { text: "purity", num: true }],
            best[label].map(function (row) {
              return [
                row.model, row.pset,
                api.link(row.layer, "paths", row.run.split("/"), { label: label }),
                row.depth >= 0 ? (row.depth + 1) + " of " + row.nLayers : "–",
                api.fmt(row.ari), api.fmt(row.nmi), api.fmt(row.purity)
              ];
            })));
        });
      });
      if (!anyLabel) view.appendChild(h("p", { class: "note" }, "No labels: add a labels.csv to a stimulus folder to score clusters against them."));

      view.appendChild(h("h2", null, "Runs"));
      view.appendChild(api.table(
        ["stimulus set", "model", "parameter set", { text: "examples", num: true }, { text: "distinct paths", num: true }, ""],
        index.runs.map(function (r) {
          return [r.set, r.model, r.pset, api.fmt(r.n), api.fmt(r.distinct), api.link("cluster paths", "paths", r.key.split("/"))];
        })));

      index.pages.forEach(function (p) {
        var sections = p.info && p.info.overview;
        if (!Array.isArray(sections)) return;
        sections.forEach(function (s) {
          view.appendChild(h("h2", null, String(s.title)));
          if (s.text) view.appendChild(h("p", { class: "lead" }, String(s.text)));
          view.appendChild(api.table(s.columns.map(String), s.rows.map(function (row) {
            return row.map(function (cell) { return sectionCell(api, cell); });
          })));
          if (api.hasPage(p.name)) view.appendChild(h("p", null, api.link("Open " + p.title, p.name)));
        });
      });
    }
  });
})();
