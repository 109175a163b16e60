/* actpipe results site: the Sankey diagram of cluster paths (shared by the paths, cluster and
 * example pages).
 *
 * Two views of a run:
 * - top N paths (default): the N most common complete paths are drawn; column j holds one
 *   node per cluster of layer j that lies on a drawn path, sized by the examples of the drawn
 *   paths passing through it, plus one "other" node per column carrying every remaining
 *   example (less common paths and examples dropped at some layer) when there are any.
 *   With N >= the number of distinct paths and nothing dropped, this is the whole
 *   transitions table: one node per non-empty cluster and no "other" node.
 *   An example whose path is highlighted always has its path drawn (added when not among the
 *   N, with its count taken from "other").
 * - all transitions: every link of transitions.json, one node per cluster with members.
 */
(function () {
  "use strict";
  var api = window.actpipe.api;
  var h = api.h;
  var HIGHLIGHT = "rgba(213,94,0,0.9)";
  var DIMMED = "rgba(120,120,120,0.12)";
  var OTHER_LINK = "rgba(150,150,150,0.25)";

  function hexToRgba(hex, alpha) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + ((n >> 16) & 255) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function clusterColours(run, labels, column) {
    /* Colour of cluster c at layer j: its majority value of `column` (one colour without). */
    if (!column || !labels || !labels.values[column]) {
      return { colour: function () { return "#0072B2"; }, values: [], colours: [] };
    }
    var values = labels.values[column];
    var colours = api.palette(values.length);
    return {
      values: values,
      colours: colours,
      colour: function (j, c) {
        var code = run.layers[j].majority[column][c];
        return code === null || code === undefined ? api.otherColour : colours[code];
      }
    };
  }

  function describe(run, labels, j, c, shown) {
    var layer = run.layers[j];
    var size = layer.sizes[c];
    var lines = ["Cluster " + c + " of layer " + layer.name, size.toLocaleString("en") + " members (" + api.percent(size, run.n) + " of the examples)"];
    if (shown !== null && shown !== size) lines.push(shown.toLocaleString("en") + " of them on the drawn paths");
    run.labels.forEach(function (col) {
      var code = layer.majority[col][c];
      if (code === null || code === undefined) return;
      lines.push("majority " + col + ": " + labels.values[col][code] + " (" + Math.round(100 * layer.share[col][c]) + "%)");
    });
    return lines.map(api.plotText).join("<br>");
  }

  function complete(path) {
    return path && path.every(function (c) { return c >= 0; });
  }

  function model(run, opts) {
    /* Nodes [{layer, cluster (-1: other), value}] and links [{source, target, value, j, a, b}]. */
    var L = run.layers.length;
    var nodes = [];
    var nodeIndex = new Map();
    var links = new Map();
    var shown = 0;
    var pooled = 0;
    function node(j, c) {
      var key = j + ":" + c;
      if (!nodeIndex.has(key)) {
        nodeIndex.set(key, nodes.length);
        nodes.push({ layer: j, cluster: c, value: 0 });
      }
      return nodeIndex.get(key);
    }
    function add(j, a, b, value) {
      var s = node(j, a);
      var t = node(j + 1, b);
      var key = s + ">" + t;
      if (!links.has(key)) links.set(key, { source: s, target: t, value: 0, j: j, a: a, b: b });
      links.get(key).value += value;
    }
    if (opts.all) {
      var per = [];
      for (var j = 0; j < L; j++) per.push(new Set());
      opts.transitions.links.forEach(function (pairs, j) {
        pairs.forEach(function (l) { per[j].add(l[0]); per[j + 1].add(l[1]); });
      });
      per.forEach(function (set, j) {
        Array.from(set).sort(function (x, y) { return x - y; }).forEach(function (c) { node(j, c); });
      });
      opts.transitions.links.forEach(function (pairs, j) {
        pairs.forEach(function (l) { add(j, l[0], l[1], l[2]); });
      });
      shown = null;
    } else {
      var paths = run.top.paths.slice(0, opts.n);
      var counts = run.top.counts.slice(0, opts.n);
      if (opts.path && complete(opts.path) && !(opts.pathRank >= 0 && opts.pathRank < opts.n)) {
        paths.push(opts.path);
        counts.push(opts.pathCount || 1);
      }
      shown = counts.reduce(function (x, y) { return x + y; }, 0);
      pooled = run.n - shown;
      for (var k = 0; k < L; k++) {
        var clusters = Array.from(new Set(paths.map(function (p) { return p[k]; })));
        clusters.sort(function (x, y) { return x - y; }).forEach(function (c) { node(k, c); });
        if (pooled > 0 && opts.showOther) node(k, -1);
      }
      paths.forEach(function (p, i) {
        for (var j2 = 0; j2 + 1 < L; j2++) add(j2, p[j2], p[j2 + 1], counts[i]);
      });
      if (pooled > 0 && opts.showOther) {
        for (var j3 = 0; j3 + 1 < L; j3++) add(j3, -1, -1, pooled);
      }
    }
    var list = Array.from(links.values());
    list.forEach(function (l) {
      nodes[l.source].out = (nodes[l.source].out || 0) + l.value;
      nodes[l.target].in = (nodes[l.target].in || 0) + l.value;
    });
    nodes.forEach(function (n) { n.value = Math.max(n.in || 0, n.out || 0); });
    return { nodes: nodes, links: list, shown: shown, pooled: pooled };
  }

  function figure(run, labels, m, opts) {
    var colours = clusterColours(run, labels, opts.column);
    var path = opts.path || null;
    function onPathNode(n) { return path && n.cluster >= 0 && path[n.layer] === n.cluster; }
    function onPathLink(l) { return path && l.a >= 0 && path[l.j] === l.a && path[l.j + 1] === l.b; }
    var nodeColour = m.nodes.map(function (n) { return n.cluster < 0 ? api.otherColour : colours.colour(n.layer, n.cluster); });
    var trace = {
      type: "sankey",
      arrangement: "snap",
      valueformat: ",d",
      node: {
        label: m.nodes.map(function (n) {
          if (n.cluster < 0) return "other";
          return onPathNode(n) ? "<b>" + n.cluster + "</b>" : String(n.cluster);
        }),
        color: path ? m.nodes.map(function (n, i) {
          return onPathNode(n) ? nodeColour[i] : hexToRgba(nodeColour[i], 0.3);
        }) : nodeColour,
        customdata: m.nodes.map(function (n) {
          var text = n.cluster < 0
            ? api.plotText("Other: " + n.value.toLocaleString("en") + " examples on less common paths (or dropped) at layer " + run.layers[n.layer].name)
            : describe(run, labels, n.layer, n.cluster, m.shown === null ? null : n.value);
          return [n.layer, n.cluster, text, onPathNode(n) ? 1 : 0];
        }),
        hovertemplate: "%{customdata[2]}<extra></extra>",
        line: { color: "rgba(0,0,0,0.45)", width: 0.5 },
        pad: 10,
        thickness: 16
      },
      link: {
        source: m.links.map(function (l) { return l.source; }),
        target: m.links.map(function (l) { return l.target; }),
        value: m.links.map(function (l) { return l.value; }),
        color: m.links.map(function (l, i) {
          if (path) return onPathLink(l) ? HIGHLIGHT : DIMMED;
          if (l.a < 0) return OTHER_LINK;
          return hexToRgba(nodeColour[l.source], 0.4);
        }),
        customdata: m.links.map(function (l) {
          var text = l.a < 0
            ? "other → other: " + l.value.toLocaleString("en")
            : run.layers[l.j].name + " cluster " + l.a + " → " + run.layers[l.j + 1].name + " cluster " + l.b + ": " + l.value.toLocaleString("en") + " examples";
          return [l.j, l.a, l.b, onPathLink(l) ? 1 : 0, api.plotText(text)];
        }),
        hovertemplate: "%{customdata[4]}<extra></extra>"
      }
    };
    var L = run.layers.length;
    var annotations = run.layers.map(function (layer, j) {
      return {
        text: api.plotText(layer.name),
        x: L > 1 ? j / (L - 1) : 0.5,
        y: 1.0,
        xref: "paper",
        yref: "paper",
        xanchor: L > 1 ? (j === 0 ? "left" : j === L - 1 ? "right" : "center") : "center",
        yanchor: "bottom",
        showarrow: false,
        font: { size: 12 }
      };
    });
    var layout = {
      margin: { l: 10, r: 10, t: 34, b: 10 },
      font: { family: "system-ui, sans-serif", size: 12 },
      annotations: annotations,
      paper_bgcolor: "#ffffff"
    };
    return { data: [trace], layout: layout, colours: colours };
  }

  function draw(el, run, labels, opts) {
    /* Draw (or redraw) the flow of `run` into `el`; resolve with {model, colours}. */
    if (run.layers.length < 2) {
      el.replaceChildren(h("p", { class: "note" }, "One layer only: there is no flow to draw."));
      return Promise.resolve({ model: { nodes: [], links: [] }, colours: clusterColours(run, labels, opts.column) });
    }
    var m = model(run, opts);
    var fig = figure(run, labels, m, opts);
    return api.plotly().then(function (Plotly) {
      return Plotly.react(el, fig.data, fig.layout, {
        displaylogo: false,
        responsive: true,
        modeBarButtonsToRemove: ["select2d", "lasso2d"],
        toImageButtonOptions: { format: "svg", filename: "cluster-paths" }
      });
    }).then(function () {
      if (opts.onNode && !el.dataset.clickBound) {
        /* A click on a node opens its cluster. Nodes can also be dragged (which swallows
           Plotly's click event), so a press and release on a node without moving is a click. */
        el.dataset.clickBound = "1";
        var down = null;
        el.addEventListener("pointerdown", function (ev) {
          down = ev.button === 0 ? [ev.clientX, ev.clientY] : null;
        });
        el.addEventListener("pointerup", function (ev) {
          var start = down;
          down = null;
          if (!start || Math.abs(ev.clientX - start[0]) + Math.abs(ev.clientY - start[1]) > 4) return;
          var node = ev.target && ev.target.closest ? ev.target.closest(".sankey-node") : null;
          var datum = node && node.__data__ && node.__data__.node;
          var data = datum && datum.customdata;
          if (data && data[1] >= 0 && el._actpipeOnNode) el._actpipeOnNode(data[0], data[1]);
        });
      }
      el._actpipeModel = m;
      el._actpipeOnNode = opts.onNode;
      return { model: m, colours: fig.colours };
    });
  }

  function clusterTable(run, labels, column, onlyClusters) {
    /* The keyboard-friendly twin of the diagram: every cluster of every layer as a link. */
    var colours = clusterColours(run, labels, column);
    var grid = h("div", { class: "cluster-grid", role: "group", "aria-label": "Clusters by layer" });
    run.layers.forEach(function (layer, j) {
      var list = h("ul");
      layer.sizes.forEach(function (size, c) {
        if (size === 0) return;
        if (onlyClusters && !onlyClusters.has(j + ":" + c)) return;
        var maj = "";
        if (column) {
          var code = layer.majority[column][c];
          if (code !== null && code !== undefined) maj = ", " + column + " " + labels.values[column][code] + " " + Math.round(100 * layer.share[column][c]) + "%";
        }
        list.appendChild(h("li", null,
          h("span", { class: "swatch", style: "background:" + colours.colour(j, c) }),
          api.link("cluster " + c, "cluster", run.key.split("/").concat([layer.key, c]), null,
            { dataset: { layer: String(j), cluster: String(c) } }),
          " (" + size.toLocaleString("en") + maj + ")"));
      });
      grid.appendChild(h("section", null, h("h3", null, layer.name), list));
    });
    return grid;
  }

  function flowLegend(colours, column) {
    if (!column || !colours.values.length) return null;
    var note = colours.values.length > 23 ? "More values than distinguishable colours: hover a node for its label." : null;
    return h("div", null, h("span", { class: "keys" }, "Node colour: majority " + column), api.legend(colours.values, colours.colours, note));
  }

  window.actpipe.flow = { model: model, draw: draw, clusterTable: clusterTable, legend: flowLegend, colours: clusterColours };
})();
