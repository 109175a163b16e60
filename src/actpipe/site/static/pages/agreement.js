/* Activations vs activation x gradient: per layer, the ARI of each parameter set's clusters
 * against a label (solid lines: activations, dashed: activation x gradient), with the table
 * of every score and the difference of each pair. */
(function () {
  "use strict";

  function entryOf(api, args) {
    var info = api.pageInfo("agreement") || { entries: [] };
    var key = args.length >= 2 ? args[0] + "/" + args[1] : "";
    return info.entries.find(function (e) { return e.key === key; }) || info.entries[0];
  }

  actpipe.page({
    name: "agreement",
    title: "Activations vs act × grad",
    href: function (api) { return api.route("agreement", entryOf(api, []).key.split("/")); },
    render: function (view, route, api, alive) {
      var h = api.h;
      var info = api.pageInfo("agreement");
      var entry = entryOf(api, route.args);
      return api.load("agreement/" + entry.key).then(function (data) {
        if (!alive()) return null;
        view.appendChild(h("h1", null, "Activations vs activation × gradient: " + data.model + " on " + data.set));
        view.appendChild(h("p", { class: "lead" },
          "How well the clusters of each layer agree with a label (adjusted Rand index), for the parameter sets " +
          "that cluster the layer's activations (what the network saw) and those that cluster activation × " +
          "gradient (what it used for its output). Pairs with otherwise equal parameters are compared in the " +
          "last columns. Click a parameter set for its cluster paths."));
        if (info.entries.length > 1) {
          var controls = h("div", { class: "controls" });
          controls.appendChild(api.select("Model and set", info.entries.map(function (e) {
            return { value: e.key, text: e.model + " on " + e.set };
          }), entry.key, function (v) { location.hash = api.route("agreement", v.split("/")); }));
          view.appendChild(controls);
        }
        var drawn = [];
        data.tables.forEach(function (table, t) {
          view.appendChild(h("h2", null, "Label: " + table.label));
          var plot = h("div", { class: "plot", id: "agreement-plot-" + t });
          view.appendChild(plot);
          var links = h("p", null, "Cluster paths: ");
          table.parameter_sets.forEach(function (c, i) {
            if (i) links.appendChild(document.createTextNode(" · "));
            links.appendChild(api.link(c.name + " (" + (c.input === "activations" ? "activations" : "act × grad") + ")",
              "paths", c.run.split("/"), { label: table.label }));
          });
          view.appendChild(links);
          var columns = [{ text: "layer" }];
          table.parameter_sets.forEach(function (c) {
            var kind = c.input === "activations" ? "activations" : "act × grad";
            ["ARI", "NMI", "purity"].forEach(function (s) {
              columns.push({ text: s + " " + c.name + " (" + kind + ", " + c.method + ", k=" + c.k + ")", num: true });
            });
          });
          table.pairs.forEach(function (p) {
            columns.push({ text: "ΔARI " + p.activations_x_gradients + " − " + p.activations + (p.same_parameters ? "" : " (other parameters)"), num: true });
          });
          var rows = table.layers.map(function (layer, j) {
            var row = [layer];
            table.parameter_sets.forEach(function (c) {
              row.push(api.fmt(c.ari[j]), api.fmt(c.nmi[j]), api.fmt(c.purity[j]));
            });
            table.pairs.forEach(function (p) {
              var d = p.ari_difference[j];
              row.push(d === null ? "–" : (d > 0 ? "+" : "") + api.fmt(d));
            });
            return row;
          });
          view.appendChild(api.table(columns, rows));
          var colours = api.palette(table.parameter_sets.length);
          var traces = table.parameter_sets.map(function (c, i) {
            return {
              type: "scatter", mode: "lines+markers",
              name: api.plotText(c.name + (c.input === "activations" ? " (activations)" : " (act × grad)")),
              x: table.layers.map(api.plotText), y: c.ari,
              line: { color: colours[i], width: 2, dash: c.input === "activations" ? "solid" : "dash" },
              marker: { color: colours[i], size: 7 },
              hovertemplate: api.plotText(c.name) + "<br>%{x}<br>ARI %{y:.3f}<extra></extra>",
              connectgaps: false
            };
          });
          var layout = {
            height: 340, margin: { t: 20, l: 60, r: 20, b: 80 },
            xaxis: { title: { text: "layer" }, type: "category" },
            yaxis: { title: { text: api.plotText("ARI (" + table.label + ")") }, zeroline: true },
            legend: { orientation: "h", y: -0.3 },
            font: { family: "system-ui, sans-serif", size: 12 }
          };
          drawn.push(api.plotly().then(function (Plotly) {
            return Plotly.react(plot, traces, layout, { displaylogo: false, responsive: true });
          }));
        });
        return Promise.all(drawn);
      });
    }
  });
})();
