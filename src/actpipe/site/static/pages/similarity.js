/* Similarity: the representational-similarity analysis of one stimulus set (data written by
 * actpipe.site.pages.similarity): the RDM of a model's layer with the stimuli ordered by a label
 * (or the RDM of the label's conditions), the layer x layer CKA / RSA matrix across the set's
 * models, each label's theory-RDM correlation against depth, and the best layer per label. */
(function () {
  "use strict";

  var SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down", "star", "hexagon", "pentagon"];
  /* ColorBrewer RdBu (colour-blind safe), blue negative, white 0, red positive. */
  var DIVERGING = [[0, "#2166ac"], [0.125, "#4393c3"], [0.25, "#92c5de"], [0.375, "#d1e5f0"], [0.5, "#f7f7f7"],
    [0.625, "#fddbc7"], [0.75, "#f4a582"], [0.875, "#d6604d"], [1, "#b2182b"]];
  var METHODS = { spearman: "Spearman ρ", pearson: "Pearson r", kendall_tau_a: "Kendall τ-a" };
  var DISTANCES = {
    correlation: "correlation distance (1 − Pearson r)",
    cosine: "cosine distance (1 − cosine similarity)",
    euclidean: "Euclidean distance",
    sqeuclidean: "squared Euclidean distance per feature",
    crossnobis: "cross-validated squared Euclidean distance per feature (crossnobis: 0 on average for identical patterns, so single values can be negative)"
  };
  var MAX_TICKS = 30;
  var MAX_TICK_LAYERS = 60;

  function methodName(m) { return METHODS[m] || m; }
  function distanceName(d) { return DISTANCES[d] || d + " distance"; }
  function longest(texts) { return texts.reduce(function (a, t) { return Math.max(a, String(t).length); }, 0); }
  function uniq(list) { return list.filter(function (v, i) { return list.indexOf(v) === i; }); }

  /* The square matrix of a condensed RDM of n items (pairs i < j row by row), rows and
   * columns in `order` (positions 0..n-1); the diagonal is 0. */
  function squareOf(condensed, n, order) {
    var z = [];
    for (var a = 0; a < order.length; a++) {
      var i = order[a];
      var row = new Array(order.length);
      for (var b = 0; b < order.length; b++) {
        var j = order[b];
        if (i === j) { row[b] = 0; continue; }
        var lo = Math.min(i, j);
        var hi = Math.max(i, j);
        var v = condensed[lo * n - lo * (lo + 1) / 2 + hi - lo - 1];
        row[b] = v === undefined ? null : v;
      }
      z.push(row);
    }
    return z;
  }

  /* Consecutive runs of equal values: [{value, start, end}]. */
  function runs(values) {
    var out = [];
    values.forEach(function (v, i) {
      if (out.length && out[out.length - 1].value === v) out[out.length - 1].end = i;
      else out.push({ value: v, start: i, end: i });
    });
    return out;
  }

  function shown(value) { return value === "" || value === null || value === undefined ? "(no value)" : String(value); }

  /* Axis ticks at the middle of each run (at most MAX_TICKS of them). */
  function runAxis(api, groups, title) {
    var step = Math.max(1, Math.ceil(groups.length / MAX_TICKS));
    var ticks = groups.filter(function (g, k) { return k % step === 0; });
    return {
      title: { text: api.plotText(title) }, tickmode: "array", automargin: true, zeroline: false, showgrid: false,
      tickvals: ticks.map(function (g) { return (g.start + g.end) / 2; }),
      ticktext: ticks.map(function (g) { return api.plotText(shown(g.value)); })
    };
  }

  /* Lines between runs, across the whole map (rows and columns). */
  function runLines(groups, n, colour, width) {
    var shapes = [];
    groups.slice(1).forEach(function (g) {
      var at = g.start - 0.5;
      var line = { color: colour, width: width };
      shapes.push({ type: "line", xref: "x", yref: "y", x0: at, x1: at, y0: -0.5, y1: n - 0.5, line: line });
      shapes.push({ type: "line", xref: "x", yref: "y", y0: at, y1: at, x0: -0.5, x1: n - 0.5, line: line });
    });
    return shapes;
  }

  function finiteRange(z) {
    var lo = Infinity;
    var hi = -Infinity;
    z.forEach(function (row) {
      row.forEach(function (v) {
        if (v === null || v === undefined || !isFinite(v)) return;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      });
    });
    return lo <= hi ? [lo, hi] : [0, 1];
  }

  /* A table of a square matrix, built when its <details> opens (large maps are big tables). */
  function lazyMatrixTable(api, summaryText, names, z, id) {
    var details = api.h("details", { id: id }, api.h("summary", null, summaryText));
    var built = false;
    details.addEventListener("toggle", function () {
      if (!details.open || built) return;
      built = true;
      details.appendChild(api.table([""].concat(names).map(function (t, i) { return i ? { text: t, num: true } : t; }),
        z.map(function (row, a) {
          return [names[a]].concat(row.map(function (v) { return api.fmt(v, 4); }));
        })));
    });
    return details;
  }

  /* A square map: its height grows with n; its width leaves room for the row labels
   * (`labelChars`: the longest tick text) and the colour bar, within the page's width. */
  function heatmapLayout(api, n, xaxis, yaxis, extra, labelChars, box) {
    var height = Math.min(760, Math.max(420, 360 + 2 * n));
    var labels = Math.min(260, 7 * (labelChars || 0));
    var width = Math.min(Math.max(box.clientWidth, 400), height - 110 + labels + 90 + 120);
    return Object.assign({
      height: height,
      width: width,
      margin: { t: 30, l: 80, r: 20, b: 80 },
      xaxis: Object.assign({ constrain: "domain" }, xaxis),
      yaxis: Object.assign({ autorange: "reversed", scaleanchor: "x", constrain: "domain" }, yaxis),
      font: { family: "system-ui, sans-serif", size: 12 }
    }, extra || {});
  }

  actpipe.page({
    name: "similarity",
    title: "Similarity",
    href: function (api) {
      var info = api.pageInfo("similarity");
      return api.route("similarity", info && info.sets.length ? [info.sets[0].key] : []);
    },
    render: function (view, route, api, alive) {
      var h = api.h;
      var info = api.pageInfo("similarity") || { sets: [] };
      var setInfo = info.sets.find(function (s) { return s.key === route.args[0]; }) || info.sets[0];
      if (!setInfo || (route.args[0] && setInfo.key !== route.args[0])) {
        view.appendChild(h("h1", null, "No similarity results for this set"));
        view.appendChild(h("p", null, "Similarity results exist for: ",
          info.sets.map(function (s, i) { return [i ? ", " : "", api.link(s.name, "similarity", [s.key])]; }), "."));
        return null;
      }
      return Promise.all([api.load("similarity/" + setInfo.key + "/summary"), api.plotly()]).then(function (parts) {
        if (!alive()) return null;
        return draw(view, route, api, alive, parts[0], parts[1], info);
      });
    }
  });

  function draw(view, route, api, alive, S, Plotly, info) {
    var h = api.h;
    var p = route.params;
    var labelKeys = S.labels.map(function (l) { return l.key; });
    var modelKeys = S.models.map(function (m) { return m.key; });
    var state = {
      label: labelKeys.indexOf(p.get("label")) >= 0 ? p.get("label") : (labelKeys[0] || ""),
      distance: S.distances.indexOf(p.get("distance")) >= 0 ? p.get("distance") : S.distance,
      method: S.methods.indexOf(p.get("method")) >= 0 ? p.get("method") : S.method,
      model: modelKeys.indexOf(p.get("model")) >= 0 ? p.get("model") : (modelKeys[0] || ""),
      layer: p.get("layer") || "",
      kind: p.get("rdm") === "conditions" ? "conditions" : "stimuli",
      measure: p.get("measure") === "rsa" || !S.matrices.cka ? "rsa" : "cka",
      x: p.get("x") === "depth" ? "depth" : "index"
    };
    var config = { displaylogo: false, responsive: true };
    var fixed = { displaylogo: false };

    function label() { return S.labels.find(function (l) { return l.key === state.label; }) || null; }
    function model() { return S.models.find(function (m) { return m.key === state.model; }) || S.models[0]; }
    function bestRows(labelKey) {
      var b = S.best[labelKey];
      return (b && b[state.distance] && b[state.distance][state.method]) || [];
    }
    function theoryValues(labelKey) {
      var t = S.theory[labelKey];
      return (t && t[state.distance] && t[state.distance][state.method]) || null;
    }
    function defaultLayer(m) {
      var rdmLayers = m.rdm ? m.rdm.layers : [];
      if (rdmLayers.some(function (l) { return l.key === state.layer; })) return state.layer;
      var best = bestRows(state.label).find(function (r) { return S.models[r.m] === m; });
      if (best && rdmLayers.some(function (l) { return l.key === S.layers[best.row].key; })) return S.layers[best.row].key;
      return rdmLayers.length ? rdmLayers[rdmLayers.length - 1].key : "";
    }
    state.layer = defaultLayer(model());

    function setHash() {
      history.replaceState(null, "", api.route("similarity", [S.key], {
        label: state.label || null,
        distance: state.distance !== S.distance ? state.distance : null,
        method: state.method !== S.method ? state.method : null,
        model: state.model, layer: state.layer || null,
        rdm: state.kind === "conditions" ? "conditions" : null,
        measure: state.measure === "rsa" && S.matrices.cka ? "rsa" : null,
        x: state.x === "depth" ? "depth" : null
      }));
    }

    /* ---------------------------------------------------------------- header, choosers */
    view.appendChild(h("h1", null, "Representational similarity: " + S.set));
    var anySketch = (S.estimator || []).some(function (e) { return e !== "exact"; });
    view.appendChild(h("p", { class: "lead" },
      "How each layer represents the stimuli, as a representational dissimilarity matrix (RDM: one " +
      "dissimilarity per pair of stimuli), and how layers of the " + S.models.length + " model(s) compare: by RSA " +
      "(the correlation of two layers' RDMs, on " + api.fmt(S.nRsa) + " stimuli) and by linear CKA" +
      (S.matrices.cka ? " (on " + api.fmt(S.nCka) + " stimuli" + (anySketch ? "; wide layers estimated from random sketches" : "") + ")" : " (not computed)") +
      ". A theory RDM per label says which stimuli the label predicts to be alike; its correlation with each layer's RDM " +
      "shows where along the network the label is represented. From " + S.file + " in the results folder."));
    var controls = h("div", { class: "controls" });
    controls.appendChild(api.select("Stimulus set", info.sets.map(function (s) { return { value: s.key, text: s.name }; }), S.key, function (v) {
      location.hash = api.route("similarity", [v]);
    }, { "data-control": "set" }));
    if (S.labels.length) {
      controls.appendChild(api.select("Label", S.labels.map(function (l) { return { value: l.key, text: l.name }; }), state.label, function (v) {
        state.label = v;
        update({ rdm: true, theory: true });
      }, { "data-control": "label" }));
    }
    controls.appendChild(api.select("RDM distance", S.distances.map(function (d) { return { value: d, text: d }; }), state.distance, function (v) {
      state.distance = v;
      update({ rdm: true, matrix: true, theory: true, best: true });
    }, { "data-control": "distance" }));
    if (S.methods.length) {
      controls.appendChild(api.select("RSA method", S.methods.map(function (m) { return { value: m, text: methodName(m) }; }), state.method, function (v) {
        state.method = v;
        update({ matrix: true, theory: true, best: true });
      }, { "data-control": "method" }));
    }
    view.appendChild(controls);

    /* ---------------------------------------------------------------- sections */
    view.appendChild(h("h2", { id: "rdm-heading" }, "The RDM of one layer"));
    var rdmControls = h("div", { class: "controls" });
    var modelSelect = api.select("Model", S.models.map(function (m) { return { value: m.key, text: m.name }; }), state.model, function (v) {
      state.model = v;
      state.layer = defaultLayer(model());
      layerBox.replaceChildren(layerSelect());
      update({ rdm: true });
    }, { "data-control": "model" });
    var layerBox = h("span");
    function layerSelect() {
      var m = model();
      var layers = m.rdm ? m.rdm.layers : [];
      return api.select("Layer", layers.map(function (l) { return { value: l.key, text: l.name }; }), state.layer, function (v) {
        state.layer = v;
        update({ rdm: true });
      }, { "data-control": "layer" });
    }
    layerBox.appendChild(layerSelect());
    var kindSelect = api.select("Show", [{ value: "stimuli", text: "stimuli, ordered by the label" }, { value: "conditions", text: "conditions (the label's values)" }],
      state.kind, function (v) { state.kind = v; update({ rdm: true }); }, { "data-control": "rdm-kind" });
    rdmControls.appendChild(modelSelect);
    rdmControls.appendChild(layerBox);
    rdmControls.appendChild(kindSelect);
    view.appendChild(rdmControls);
    var rdmText = h("p", { id: "rdm-text", class: "lead" });
    var rdmPlot = h("div", { class: "plot heatmap", id: "rdm-heatmap", role: "img", "aria-describedby": "rdm-text" });
    var rdmTables = h("div");
    view.appendChild(rdmText);
    view.appendChild(rdmPlot);
    view.appendChild(rdmTables);

    view.appendChild(h("h2", null, "Layer × layer similarity across models"));
    var matrixControls = h("div", { class: "controls" });
    var measures = [];
    if (S.matrices.cka) measures.push({ value: "cka", text: "linear CKA" });
    if (Object.keys(S.matrices.rsa).length) measures.push({ value: "rsa", text: "RSA (correlation of the RDMs)" });
    matrixControls.appendChild(api.select("Measure", measures, state.measure, function (v) {
      state.measure = v;
      update({ matrix: true });
    }, { "data-control": "measure" }));
    view.appendChild(matrixControls);
    var matrixText = h("p", { id: "matrix-text", class: "lead" });
    var matrixPlot = h("div", { class: "plot heatmap", id: "layer-matrix", role: "img", "aria-describedby": "matrix-text" });
    var matrixTable = h("div");
    view.appendChild(matrixText);
    view.appendChild(matrixPlot);
    view.appendChild(matrixTable);

    view.appendChild(h("h2", null, "Theory RDM correlation vs depth"));
    var theoryControls = h("div", { class: "controls" });
    theoryControls.appendChild(api.select("Depth axis", [{ value: "index", text: "layer number" }, { value: "depth", text: "relative depth (0 = first, 1 = last)" }],
      state.x, function (v) { state.x = v; update({ theory: true }); }, { "data-control": "depth-axis" }));
    view.appendChild(theoryControls);
    var theoryText = h("p", { id: "theory-text", class: "lead" });
    var theoryPlot = h("div", { class: "plot", id: "theory-plot", role: "img", "aria-describedby": "theory-text" });
    var theoryTable = h("div");
    view.appendChild(theoryText);
    view.appendChild(theoryPlot);
    view.appendChild(theoryTable);

    view.appendChild(h("h2", null, "Best layer per label and model"));
    var bestText = h("p", { class: "lead" });
    var bestTable = h("div", { id: "best-layers" });
    view.appendChild(bestText);
    view.appendChild(bestTable);

    function failed(box, err) {
      box.replaceChildren(h("div", { class: "error", role: "alert" }, "Could not draw this: " + (err && err.message ? err.message : String(err))));
      if (window.console) console.error(err);
    }

    /* ---------------------------------------------------------------- the RDM of a layer */
    var rdmToken = 0;
    var matrixToken = 0;
    function current(token, which) { return alive() && token === (which === "rdm" ? rdmToken : matrixToken); }

    function drawRdm() {
      var token = ++rdmToken;
      var m = model();
      var lab = label();
      var layerEntry = m.rdm ? m.rdm.layers.find(function (l) { return l.key === state.layer; }) : null;
      var stamp = [m.key, state.layer, state.kind, state.label, state.distance].join("|");
      rdmTables.replaceChildren();
      function done() { rdmPlot.dataset.state = stamp; }
      if (!m.rdm || !layerEntry) {
        Plotly.purge(rdmPlot);
        rdmText.textContent = m.rdm ? "This model has no such layer." : "No rdms.h5 for " + m.name + " in this run.";
        return Promise.resolve().then(done);
      }
      if (m.rdm.distances.indexOf(state.distance) < 0) {
        Plotly.purge(rdmPlot);
        rdmText.textContent = "The RDMs of " + m.name + " were not computed with the " + state.distance + " distance.";
        return Promise.resolve().then(done);
      }
      var base = "similarity/" + S.key + "/";
      rdmText.textContent = "Loading…";
      if (state.kind === "conditions") {
        var cond = lab ? m.rdm.conditions.find(function (c) { return c.key === lab.key; }) : null;
        if (!cond || !cond.drawn) {
          Plotly.purge(rdmPlot);
          rdmText.textContent = !lab ? "No labels." : !cond ? "No condition RDMs of " + lab.name + " (it has one value, or more than similarity.max_conditions)." :
            lab.name + " has " + api.fmt(cond.n) + " values, more than the " + api.fmt(S.maxHeatmap) + " a map shows here; its condition RDMs are in rdms.h5.";
          return Promise.resolve().then(done);
        }
        return Promise.all([api.load(base + "stimuli/" + m.key), api.load(base + "cond/" + m.key + "/" + lab.key + "/" + state.distance + "/" + state.layer)]).then(function (parts) {
          if (!current(token, "rdm")) return null;
          var c = parts[0].conditions[lab.key];
          var n = c.values.length;
          var order = [];
          for (var i = 0; i < n; i++) order.push(i);
          var z = squareOf(parts[1].rdm, n, order);
          var names = c.values.map(function (v, k) { return shown(v) + " (" + api.fmt(c.counts[k]) + ")"; });
          var hover = names.map(api.plotText);
          var text = z.map(function (row, a) { return row.map(function (v, b) { return hover[a] + "<br>" + hover[b]; }); });
          var groups = c.values.map(function (v, k) { return { value: v, start: k, end: k }; });
          rdmText.textContent = "Condition RDM of " + m.name + " · " + layerEntry.name + ": " + distanceName(state.distance) +
            " between the mean patterns of the " + n + " values of " + lab.name + " (each over all its stimuli; counts in brackets), in the label's order. " +
            "Dark = similar, yellow = dissimilar (viridis).";
          rdmPlot.setAttribute("aria-label", "Heatmap: condition RDM of " + lab.name + " at " + layerEntry.name + " of " + m.name);
          var trace = {
            type: "heatmap", z: z, text: text, colorscale: "Viridis",
            colorbar: { title: { text: api.plotText(state.distance) } },
            hovertemplate: "%{text}<br>" + api.plotText(state.distance) + " %{z:.4g}<extra></extra>"
          };
          rdmTables.appendChild(lazyMatrixTable(api, "The same values as a table (" + n + " × " + n + ")", names, z, "rdm-table"));
          var layout = heatmapLayout(api, n, runAxis(api, groups, lab.name), runAxis(api, groups, lab.name), null, longest(names), rdmPlot);
          return Plotly.react(rdmPlot, [trace], layout, fixed).then(done);
        });
      }
      return Promise.all([api.load(base + "stimuli/" + m.key), api.load(base + "rdm/" + m.key + "/" + state.distance + "/" + state.layer)]).then(function (parts) {
        if (!current(token, "rdm")) return null;
        var st = parts[0];
        var n = st.ids.length;
        var order = lab && st.order[lab.key] ? st.order[lab.key] : st.ids.map(function (id, i) { return i; });
        var values = lab && st.labels[lab.key] ? order.map(function (i) { return st.labels[lab.key][i]; }) : order.map(function () { return ""; });
        var z = squareOf(parts[1].rdm, n, order);
        var names = order.map(function (i, k) { return st.ids[i] + (lab ? " (" + shown(values[k]) + ")" : ""); });
        var hover = names.map(api.plotText);
        var text = z.map(function (row, a) { return row.map(function (v, b) { return hover[a] + "<br>" + hover[b]; }); });
        var groups = runs(values);
        var computed = m.rdm.computed || {};
        var drawn = m.rdm.shown || {};
        var about = [];
        if (computed.subsampled) {
          about.push("The RDMs of this set are computed on a subsample of " + api.fmt(computed.n) + " of its " + api.fmt(computed.n_total) +
            " stimuli (similarity.max_stimuli " + api.fmt(computed.max_stimuli) + ", seed " + computed.seed +
            (computed.balanced_by ? ", balanced by " + computed.balanced_by : "") + ").");
        }
        if (drawn.subsampled) {
          about.push("The map shows " + api.fmt(drawn.n) + " of those " + api.fmt(drawn.n_total) + " stimuli (a seeded subsample" +
            (drawn.balanced_by ? " balanced by " + drawn.balanced_by : "") + "); rdms.h5 holds them all.");
        } else {
          about.push("The map shows all " + api.fmt(n) + " stimuli of the RDM.");
        }
        rdmText.textContent = "Stimulus RDM of " + m.name + " · " + layerEntry.name + ": " + distanceName(state.distance) +
          (state.distance === "crossnobis" ? " between two stimuli, across their replicates. " : " between two stimuli's replicate-mean patterns. ") +
          (lab ? "Stimuli are ordered by " + lab.name + (st.numeric[lab.key] ? " (numerically)" : "") + ", then by id; lines separate its values, so blocks along the diagonal are the stimuli of one value. " : "") +
          "Dark = similar, yellow = dissimilar (viridis). " + about.join(" ");
        rdmPlot.setAttribute("aria-label", "Heatmap: stimulus RDM of " + layerEntry.name + " of " + m.name + (lab ? ", ordered by " + lab.name : ""));
        var trace = {
          type: "heatmap", z: z, text: text, colorscale: "Viridis",
          colorbar: { title: { text: api.plotText(state.distance) } },
          hovertemplate: "%{text}<br>" + api.plotText(state.distance) + " %{z:.4g}<extra></extra>"
        };
        var axisTitle = lab ? lab.name : "stimulus";
        var layout = heatmapLayout(api, n, runAxis(api, groups, axisTitle), runAxis(api, groups, axisTitle),
          { shapes: groups.length > 1 && groups.length <= MAX_TICKS ? runLines(groups, n, "#ffffff", 1) : [] },
          longest(groups.map(function (g) { return shown(g.value); })), rdmPlot);
        if (lab && groups.length <= MAX_TICKS) rdmTables.appendChild(blockTable(api, groups, z, lab.name, state.distance));
        rdmTables.appendChild(lazyMatrixTable(api, "Every value of the map as a table (" + n + " × " + n + ")", names, z, "rdm-table"));
        return Plotly.react(rdmPlot, [trace], layout, fixed).then(done);
      });
    }

    function blockTable(api, groups, z, labelName, distance) {
      var rows = groups.map(function (ga) {
        return [shown(ga.value)].concat(groups.map(function (gb) {
          var sum = 0;
          var count = 0;
          for (var a = ga.start; a <= ga.end; a++) {
            for (var b = gb.start; b <= gb.end; b++) {
              var v = z[a][b];
              if (a === b || v === null || !isFinite(v)) continue;
              sum += v;
              count++;
            }
          }
          return count ? api.fmt(sum / count, 4) : "–";
        }));
      });
      return h("div", null,
        h("p", { class: "keys" }, "Mean " + distance + " between the map's stimuli of each pair of " + labelName + " values (the diagonal: within a value):"),
        api.table([labelName].concat(groups.map(function (g) { return { text: shown(g.value), num: true }; })), rows, { id: "rdm-blocks" }));
    }

    /* ---------------------------------------------------------------- layer x layer */
    function drawMatrix() {
      var token = ++matrixToken;
      var stamp = [state.measure, state.distance, state.method].join("|");
      var key = state.measure === "cka" ? S.matrices.cka : (S.matrices.rsa[state.distance] || {})[state.method];
      if (!key) {
        Plotly.purge(matrixPlot);
        matrixTable.replaceChildren();
        matrixText.textContent = "No such comparison in " + S.file + ".";
        matrixPlot.dataset.state = stamp;
        return Promise.resolve();
      }
      return api.load(key).then(function (data) {
        if (!current(token, "matrix")) return null;
        var z = data.matrix;
        var N = S.layers.length;
        var names = S.layers.map(function (l) { return l.model + " · " + l.layer; });
        var hover = names.map(api.plotText);
        var text = z.map(function (row, a) { return row.map(function (v, b) { return hover[a] + "<br>" + hover[b]; }); });
        var groups = runs(S.layers.map(function (l) { return l.model; }));
        var isCka = state.measure === "cka";
        var range = finiteRange(z);
        var what = isCka ? "linear CKA (unbiased HSIC; 1 = the same representation up to rotation and scale, 0 = unrelated)" :
          methodName(state.method) + " between the layers' " + state.distance + " RDMs (1 = the same ordering of stimulus pairs, 0 = unrelated, negative = opposite)";
        matrixText.textContent = "Every layer of every model against every other: " + what + ". Rows and columns are the same layers, " +
          "models in order and each model's layers from first to last; lines separate the models, whose names are above the map. " +
          (isCka ? "Colours: viridis (dark = low, yellow = 1)." : "Colours: blue negative, white 0, red positive.") +
          (isCka && anySketch ? " Sketched layers: " + S.layers.filter(function (l, i) { return S.estimator[i] !== "exact"; }).map(function (l) { return l.model + " · " + l.layer; }).join(", ") + "." : "");
        var tickAxis = function (title) {
          var ax = { title: { text: api.plotText(title) }, zeroline: false, showgrid: false, automargin: true };
          if (N <= MAX_TICK_LAYERS) {
            ax.tickmode = "array";
            ax.tickvals = S.layers.map(function (l, i) { return i; });
            ax.ticktext = S.layers.map(function (l) { return api.plotText(l.layer); });
          } else {
            ax.showticklabels = false;
          }
          return ax;
        };
        var annotations = groups.map(function (g) {
          return { text: api.plotText(g.value), x: (g.start + g.end) / 2, xref: "x", y: 1, yref: "paper", yanchor: "bottom", showarrow: false, font: { size: 12 } };
        });
        var trace = {
          type: "heatmap", z: z, text: text,
          colorscale: isCka ? "Viridis" : DIVERGING,
          zmin: isCka ? Math.min(0, range[0]) : -1, zmax: 1,
          colorbar: { title: { text: isCka ? "CKA" : api.plotText(methodName(state.method)) } },
          hovertemplate: "%{text}<br>" + (isCka ? "CKA" : api.plotText(methodName(state.method))) + " %{z:.4f}<extra></extra>"
        };
        var layout = heatmapLayout(api, N, tickAxis("layer"), tickAxis("layer"), {
          shapes: runLines(groups, N, "#000000", 2), annotations: annotations, margin: { t: 40, l: 80, r: 20, b: 80 }
        }, N <= MAX_TICK_LAYERS ? longest(S.layers.map(function (l) { return l.layer; })) : 0, matrixPlot);
        matrixPlot.setAttribute("aria-label", "Heatmap: " + (isCka ? "linear CKA" : methodName(state.method) + " RSA") + " between every pair of the set's " + N + " layers");
        matrixTable.replaceChildren(lazyMatrixTable(api, "The same values as a table (" + N + " × " + N + ")", names, z, "matrix-table"));
        return Plotly.react(matrixPlot, [trace], layout, fixed).then(function () { matrixPlot.dataset.state = stamp; });
      });
    }

    /* ---------------------------------------------------------------- theory vs depth */
    function drawTheory() {
      var lab = label();
      var values = lab ? theoryValues(lab.key) : null;
      var stamp = [state.label, state.distance, state.method, state.x].join("|");
      if (!values) {
        Plotly.purge(theoryPlot);
        theoryTable.replaceChildren();
        theoryText.textContent = !lab ? "No labels for this set (a labels.csv beside the stimuli adds theory RDMs)." :
          "No theory RDM of " + lab.name + " for this distance and method (a label needs at least two values).";
        theoryPlot.dataset.state = stamp;
        return Promise.resolve();
      }
      var colours = api.palette(S.models.length);
      var traces = S.models.map(function (m, k) {
        return {
          type: "scatter", mode: "lines+markers", name: api.plotText(m.name),
          x: m.rows.map(function (i) { return state.x === "depth" ? S.layers[i].depth : S.layers[i].index + 1; }),
          y: m.rows.map(function (i) { return values[i]; }),
          text: m.rows.map(function (i) { return api.plotText(S.layers[i].layer); }),
          hovertemplate: api.plotText(m.name) + "<br>%{text}<br>" + api.plotText(methodName(state.method)) + " %{y:.4f}<extra></extra>",
          line: { color: colours[k], width: 2 },
          marker: { color: colours[k], symbol: SYMBOLS[k % SYMBOLS.length], size: 8 },
          connectgaps: false
        };
      });
      var theory = lab.theory || {};
      theoryText.textContent = methodName(state.method) + " between each layer's " + state.distance + " RDM and the theory RDM of " + lab.name +
        (theory.description ? " (" + theory.description + ")" : "") + ", from the first layer to the last: one line (and marker shape) per model. " +
        "Higher = the layer's dissimilarities follow the label more closely; 0 = unrelated.";
      theoryPlot.setAttribute("aria-label", "Line chart: correlation with the theory RDM of " + lab.name + " against layer depth, one line per model");
      theoryTable.replaceChildren(h("details", null, h("summary", null, "The same values as a table"),
        api.table(["model", "layer", { text: "layer number", num: true }, { text: "relative depth", num: true }, { text: methodName(state.method), num: true }],
          [].concat.apply([], S.models.map(function (m) {
            return m.rows.map(function (i) {
              var l = S.layers[i];
              return [m.name, l.layer, String(l.index + 1), api.fmt(l.depth, 2), api.fmt(values[i], 4)];
            });
          })), { id: "theory-table" })));
      var layout = {
        height: 420, margin: { t: 20, l: 70, r: 20, b: 60 },
        xaxis: { title: { text: state.x === "depth" ? "relative depth" : "layer number" }, zeroline: false, dtick: state.x === "depth" ? 0.25 : 1 },
        yaxis: { title: { text: api.plotText(methodName(state.method) + " with the theory RDM") }, zeroline: true, zerolinecolor: "#8c959f" },
        legend: { orientation: "h", y: -0.2 },
        font: { family: "system-ui, sans-serif", size: 12 }
      };
      return Plotly.react(theoryPlot, traces, layout, config).then(function () { theoryPlot.dataset.state = stamp; });
    }

    /* ---------------------------------------------------------------- best layers */
    function drawBest() {
      bestText.textContent = "For each label, the layer of each model whose " + state.distance + " RDM correlates best with the label's theory RDM (" +
        methodName(state.method) + "), best first. Click a layer to see its RDM ordered by the label.";
      var rows = [];
      S.labels.forEach(function (lab) {
        bestRows(lab.key).slice().sort(function (a, b) { return b.value - a.value; }).forEach(function (r) {
          var m = S.models[r.m];
          var l = S.layers[r.row];
          var params = { label: lab.key, model: m.key, layer: l.key, distance: state.distance !== S.distance ? state.distance : null, method: state.method !== S.method ? state.method : null };
          rows.push([lab.name + (lab.theory && lab.theory.description ? " (" + lab.theory.description + ")" : ""), m.name,
            api.link(l.layer, "similarity", [S.key], params), (l.index + 1) + " of " + m.rows.length, api.fmt(l.depth, 2), api.fmt(r.value, 4)]);
        });
      });
      bestTable.replaceChildren(rows.length ? api.table(["label (theory RDM)", "model", "best layer", "layer", { text: "relative depth", num: true }, { text: methodName(state.method), num: true }], rows) :
        h("p", { class: "note" }, "No theory RDMs for this set."));
      return Promise.resolve();
    }

    function update(what) {
      setHash();
      var work = [];
      function guard(fn, box) {
        work.push(fn().catch(function (err) { if (alive()) failed(box, err); }));
      }
      if (what.rdm) guard(drawRdm, rdmTables);
      if (what.matrix) guard(drawMatrix, matrixTable);
      if (what.theory) guard(drawTheory, theoryTable);
      if (what.best) guard(drawBest, bestTable);
      return Promise.all(work);
    }

    setHash();
    return Promise.all([drawRdm(), drawMatrix(), drawTheory(), drawBest()]);
  }
})();
