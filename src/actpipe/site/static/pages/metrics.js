/* Metrics vs depth: ARI / NMI / purity against a label and silhouette per layer, one line per
 * model, one column of plots per parameter set. */
(function () {
  "use strict";
  var SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down", "star", "hexagon", "pentagon"];
  var NAMES = { ari: "ARI", nmi: "NMI", purity: "purity", silhouette: "silhouette", davies_bouldin: "Davies-Bouldin", n_nonempty: "clusters", inertia: "inertia" };

  function metricName(metric) {
    var m = /^(ari|nmi|purity)_(.*)$/.exec(metric);
    if (m) return NAMES[m[1]] + " (" + m[2] + ")";
    return NAMES[metric] || metric;
  }

  actpipe.page({
    name: "metrics",
    title: "Metrics vs depth",
    href: function (api) { return api.route("metrics", [api.index.sets[0].key]); },
    render: function (view, route, api, alive) {
      var h = api.h;
      var set = api.setEntry(route.args[0] || api.index.sets[0].key) || api.index.sets[0];
      return api.load("metrics/" + set.key).then(function (data) {
        if (!alive()) return null;
        var p = route.params;
        var state = {
          label: data.labels.indexOf(p.get("label")) >= 0 ? p.get("label") : (data.labels[0] || ""),
          x: p.get("x") === "depth" ? "depth" : "index"
        };
        view.appendChild(h("h1", null, "Metrics vs depth: " + data.set));
        view.appendChild(h("p", { class: "lead" },
          "How well each layer's clusters agree with a label (ARI, NMI, purity) and how compact they are " +
          "(silhouette), from the first layer to the last: one line per model, one column per parameter set. " +
          "Hover a point for its layer; click it to open that run's cluster paths."));
        var controls = h("div", { class: "controls" });
        controls.appendChild(api.select("Stimulus set", api.index.sets.map(function (s) { return { value: s.key, text: s.name }; }), set.key, function (v) {
          location.hash = api.route("metrics", [v]);
        }));
        if (data.labels.length) {
          controls.appendChild(api.select("Label", data.labels.map(function (l) { return { value: l, text: l }; }), state.label, function (v) { state.label = v; update(); }));
        }
        controls.appendChild(api.select("Depth axis", [{ value: "index", text: "layer number" }, { value: "depth", text: "relative depth (0 = first, 1 = last)" }], state.x, function (v) { state.x = v; update(); }));
        view.appendChild(controls);
        var plot = h("div", { class: "plot", id: "metrics-plot" });
        view.appendChild(plot);
        var details = h("details", null, h("summary", null, "The same values as a table"));
        view.appendChild(details);

        var models = data.runs.map(function (r) { return r.model; }).filter(function (m, i, a) { return a.indexOf(m) === i; });
        var psets = data.runs.map(function (r) { return r.pset; }).filter(function (m, i, a) { return a.indexOf(m) === i; });
        var colours = api.palette(models.length);

        function metrics() {
          var list = state.label ? ["ari_" + state.label, "nmi_" + state.label, "purity_" + state.label] : [];
          return list.concat(["silhouette"]);
        }

        function update() {
          history.replaceState(null, "", api.route("metrics", [set.key], { label: state.label || null, x: state.x === "depth" ? "depth" : null }));
          var rowsM = metrics();
          var traces = [];
          var seen = {};
          rowsM.forEach(function (metric, r) {
            psets.forEach(function (pset, c) {
              var axis = r * psets.length + c + 1;
              data.runs.filter(function (run) { return run.pset === pset; }).forEach(function (run) {
                var mi = models.indexOf(run.model);
                var L = run.layers.length;
                traces.push({
                  type: "scatter", mode: "lines+markers",
                  name: api.plotText(run.model), legendgroup: api.plotText(run.model), showlegend: !seen[run.model],
                  x: run.layers.map(function (l, j) { return state.x === "depth" ? (L > 1 ? j / (L - 1) : 0) : j + 1; }),
                  y: run.values[metric],
                  text: run.layers.map(api.plotText),
                  customdata: run.layers.map(function (l, j) { return [run.run, run.layerKeys[j]]; }),
                  hovertemplate: api.plotText(run.model + " · " + pset) + "<br>%{text}<br>" + api.plotText(metricName(metric)) + " %{y:.3f}<extra></extra>",
                  line: { color: colours[mi], width: 2 },
                  marker: { color: colours[mi], symbol: SYMBOLS[mi % SYMBOLS.length], size: 7 },
                  xaxis: "x" + (axis === 1 ? "" : axis), yaxis: "y" + (axis === 1 ? "" : axis),
                  connectgaps: false
                });
                seen[run.model] = true;
              });
            });
          });
          var layout = {
            grid: { rows: rowsM.length, columns: psets.length, pattern: "independent", roworder: "top to bottom" },
            height: 260 * rowsM.length + 80,
            margin: { t: 40, l: 60, r: 20, b: 50 },
            legend: { orientation: "h", y: -0.06 },
            annotations: [],
            font: { family: "system-ui, sans-serif", size: 12 }
          };
          rowsM.forEach(function (metric, r) {
            psets.forEach(function (pset, c) {
              var axis = r * psets.length + c + 1;
              var suffix = axis === 1 ? "" : String(axis);
              layout["xaxis" + suffix] = { title: { text: r === rowsM.length - 1 ? (state.x === "depth" ? "relative depth" : "layer") : "" }, zeroline: false, dtick: state.x === "depth" ? 0.25 : 1 };
              layout["yaxis" + suffix] = { title: { text: c === 0 ? api.plotText(metricName(metric)) : "" }, zeroline: true };
              if (r === 0) {
                layout.annotations.push({ text: api.plotText(pset), xref: "x" + suffix + " domain", yref: "y" + suffix + " domain", x: 0.5, y: 1.08, showarrow: false, font: { size: 13 } });
              }
            });
          });
          details.replaceChildren(h("summary", null, "The same values as a table"), api.table(
            ["model", "parameter set", "layer"].concat(rowsM.map(metricName)).map(function (t, i) { return i < 3 ? t : { text: t, num: true }; }),
            [].concat.apply([], data.runs.map(function (run) {
              return run.layers.map(function (l, j) {
                return [run.model, run.pset, l].concat(rowsM.map(function (m) { return api.fmt(run.values[m][j]); }));
              });
            }))));
          return api.plotly().then(function (Plotly) {
            return Plotly.react(plot, traces, layout, { displaylogo: false, responsive: true });
          }).then(function () {
            if (!plot.dataset.clickBound) {
              plot.dataset.clickBound = "1";
              plot.on("plotly_click", function (ev) {
                var pt = ev && ev.points && ev.points[0];
                if (pt && pt.customdata) location.hash = api.route("paths", pt.customdata[0].split("/"), { label: state.label || null });
              });
            }
          });
        }
        return update();
      });
    }
  });
})();
