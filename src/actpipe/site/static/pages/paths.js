/* Cluster paths of one run: the Sankey diagram (N most common paths, or every transition),
 * the table of the most common paths, and every cluster as a link. */
(function () {
  "use strict";

  function runKey(api, route) {
    if (route.args.length >= 3) return route.args.slice(0, 3).join("/");
    return api.index.runs[0].key;
  }

  function pathTable(api, run, n) {
    var h = api.h;
    var rows = run.top.paths.slice(0, n).map(function (p, i) {
      var cells = h("span", null, p.map(function (c, j) {
        return [j ? " → " : "", api.link(String(c), "cluster", run.key.split("/").concat([run.layers[j].key, c]), null,
          { "aria-label": "cluster " + c + " of layer " + run.layers[j].name })];
      }));
      return [String(i + 1), api.fmt(run.top.counts[i]), api.percent(run.top.counts[i], run.n), cells];
    });
    return api.table(["rank", { text: "examples", num: true }, { text: "share", num: true }, "path (" + run.layers.map(function (l) { return l.name; }).join(" → ") + ")"], rows);
  }

  actpipe.page({
    name: "paths",
    title: "Cluster paths",
    href: function (api) { return api.route("paths", api.index.runs[0].key.split("/")); },
    render: function (view, route, api, alive) {
      var h = api.h;
      var key = runKey(api, route);
      var entry = api.runEntry(key);
      if (!entry) {
        view.appendChild(h("h1", null, "No such run"));
        view.appendChild(h("p", null, api.link("Go to the overview", "overview")));
        return null;
      }
      var set = api.setEntry(entry.set);
      return Promise.all([api.load("runs/" + key + "/run"), api.load("sets/" + set.key + "/labels")]).then(function (parts) {
        if (!alive()) return null;
        var run = parts[0];
        var labels = parts[1];
        var stored = run.top.paths.length;
        var p = route.params;
        var state = {
          n: Math.max(1, Math.min(stored || 1, parseInt(p.get("n") || run.options.topPaths, 10) || run.options.topPaths)),
          all: p.get("all") === "1",
          showOther: p.get("other") !== "0",
          column: run.labels.indexOf(p.get("label")) >= 0 ? p.get("label") : (run.labels[0] || "")
        };

        view.appendChild(h("h1", null, "Cluster paths: " + run.model + " on " + run.set));
        view.appendChild(h("p", { class: "lead" },
          "Parameter set " + run.pset + " (" + run.method + (run.params.k ? ", k = " + run.params.k : "") + "). " +
          "One column per layer in network order; nodes are clusters, coloured by their majority label; " +
          "ribbons carry the examples from a cluster of one layer to a cluster of the next. " +
          "Click a cluster for its images."));

        var controls = h("div", { class: "controls" });
        api.runPicker(key, "paths").forEach(function (c) { controls.appendChild(c); });
        var nInput = h("input", { type: "number", min: 1, max: Math.max(1, stored), value: state.n, id: "top-n", disabled: state.all || !stored });
        controls.appendChild(h("label", { for: "top-n" }, "Paths drawn (of " + api.fmt(run.distinct) + ")", nInput));
        var allBox = h("input", { type: "checkbox", id: "all-transitions", checked: state.all });
        controls.appendChild(h("label", { class: "inline", for: "all-transitions" }, allBox, "all transitions"));
        var otherBox = h("input", { type: "checkbox", id: "show-other", checked: state.showOther });
        controls.appendChild(h("label", { class: "inline", for: "show-other" }, otherBox, "show pooled examples (“other”)"));
        if (run.labels.length) {
          controls.appendChild(api.select("Colour by", run.labels.map(function (c) { return { value: c, text: c }; }), state.column, function (v) {
            state.column = v;
            update();
          }));
        }
        view.appendChild(controls);

        var summary = h("p", { id: "flow-summary" });
        var flowBox = h("div", { class: "plot flow", id: "flow", role: "img", "aria-label": "Sankey diagram of the cluster paths; the list of clusters below it holds the same clusters as links" });
        var legendBox = h("div");
        var clustersBox = h("div");
        var topBox = h("div");
        view.appendChild(summary);
        view.appendChild(flowBox);
        view.appendChild(legendBox);
        view.appendChild(h("h2", null, "Clusters by layer"));
        view.appendChild(h("p", { class: "keys" }, "Every cluster drawn above, as a link (Tab to move between them, Enter to open)."));
        view.appendChild(clustersBox);
        view.appendChild(h("h2", null, "Most common paths"));
        view.appendChild(topBox);

        function setHash() {
          var params = { n: state.all ? null : state.n, all: state.all ? 1 : null, other: state.showOther ? null : 0, label: state.column || null };
          history.replaceState(null, "", api.route("paths", key.split("/"), params));
        }

        function update() {
          setHash();
          nInput.disabled = state.all || !stored;
          var drawnShare = run.top.counts.slice(0, state.n).reduce(function (a, b) { return a + b; }, 0);
          summary.textContent = api.fmt(run.n) + " examples, " + api.fmt(run.complete) + " with a cluster at every layer, taking " +
            api.fmt(run.distinct) + " distinct paths. " +
            (state.all ? "Showing every transition between consecutive layers." :
              "The " + Math.min(state.n, stored) + " most common paths drawn carry " + api.percent(drawnShare, run.n) + " of the examples" +
              (run.n > drawnShare ? (state.showOther ? "; the rest are pooled as “other”." : "; the rest are hidden.") : "."));
          var needs = state.all ? api.load("runs/" + key + "/transitions") : Promise.resolve(null);
          return needs.then(function (transitions) {
            return actpipe.flow.draw(flowBox, run, labels, {
              n: state.n, all: state.all, transitions: transitions, showOther: state.showOther, column: state.column,
              onNode: function (j, c) { location.hash = api.route("cluster", key.split("/").concat([run.layers[j].key, c])); }
            });
          }).then(function (result) {
            legendBox.replaceChildren();
            var lg = actpipe.flow.legend(result.colours, state.column);
            if (lg) legendBox.appendChild(lg);
            var drawn = new Set(result.model.nodes.map(function (n) { return n.layer + ":" + n.cluster; }));
            clustersBox.replaceChildren(actpipe.flow.clusterTable(run, labels, state.column, run.layers.length > 1 ? drawn : null));
            topBox.replaceChildren(stored ? pathTable(api, run, state.all ? Math.min(stored, run.options.topPaths) : state.n) :
              h("p", { class: "note" }, "No example has a cluster at every layer."));
          });
        }

        nInput.addEventListener("change", function () {
          var v = parseInt(nInput.value, 10);
          if (!(v >= 1)) v = 1;
          state.n = Math.min(v, Math.max(1, stored));
          nInput.value = state.n;
          update();
        });
        allBox.addEventListener("change", function () { state.all = allBox.checked; update(); });
        otherBox.addEventListener("change", function () { state.showOther = otherBox.checked; update(); });
        return update();
      });
    }
  });
})();
