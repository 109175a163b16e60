/* Transformers (data written by actpipe.site.pages.transformer): per stimulus set and model,
 * the block x head heatmap of each attention metric with its table, and the class token's
 * attention of a chosen example laid over the model's input (a Plotly heatmap drawn with
 * transparency over a layout image), with choosers for the example, block and head.
 * Other *.heatmap.json files under results/transformer/ are drawn by api.heatmapPage.
 *
 * Routes: #/transformer (the first model), #/transformer/{set}/{model}?metric=&stat=
 * &example={stimulus index}&block={block key}&head={k | mean}&opacity={percent},
 * #/transformer/{i} (the i-th other heatmap). */
(function () {
  "use strict";

  var STATS = [
    { value: "mean", text: "mean" },
    { value: "std", text: "standard deviation" },
    { value: "min", text: "minimum" },
    { value: "max", text: "maximum" }
  ];
  var MEAN = "mean";

  function statTable(metric, stat) { return stat === "mean" ? metric.values : metric[stat]; }
  function pct(v) { return (100 * v).toFixed(1) + "%"; }
  function avg(list) { return list.reduce(function (a, b) { return a + b; }, 0) / list.length; }

  function otherMaps(api, info) {
    if (!info.maps.length) return null;
    var h = api.h;
    return [
      h("h2", null, "Other heatmaps"),
      h("ul", null, info.maps.map(function (m, i) {
        var where = [m.set, m.group].filter(Boolean).join(" · ");
        return h("li", null, api.link((where ? where + ": " : "") + m.title, "transformer", [String(i)]));
      }))
    ];
  }

  actpipe.page({
    name: "transformer",
    title: "Transformer metrics",
    render: function (view, route, api, alive) {
      var info = api.pageInfo("transformer") || { models: [], maps: [] };
      info.models = info.models || [];
      if (route.args.length === 1 || (!route.args.length && !info.models.length)) {
        return api.heatmapPage(view, route, "transformer", "Transformer metrics",
          "Per layer and attention head: the metrics of the transformer analysis.");
      }
      var entry = route.args.length === 2 ? info.models.find(function (m) {
        return m.setKey === route.args[0] && m.modelKey === route.args[1];
      }) : info.models[0];
      if (!entry) {
        var h = api.h;
        view.appendChild(h("h1", null, "No transformer results for this set and model"));
        view.appendChild(h("p", null, "Transformer results exist for: ", info.models.map(function (m, i) {
          return [i ? ", " : "", api.link(m.model + " on " + m.set, "transformer", [m.setKey, m.modelKey])];
        }), "."));
        return null;
      }
      var base = "transformer/" + entry.setKey + "/" + entry.modelKey;
      var loads = [api.load(base + "/summary"), api.plotly()];
      if (entry.cls) loads.push(api.load(base + "/examples"));
      return Promise.all(loads).then(function (parts) {
        if (!alive()) return null;
        return draw(view, route, api, alive, info, entry, parts[0], parts[1], parts[2] || null);
      });
    }
  });

  function draw(view, route, api, alive, info, entry, S, Plotly, E) {
    var h = api.h;
    var p = route.params;
    var T = S.transformer || {};
    var cls = S.cls;
    var metricNames = S.metrics.map(function (m) { return m.name; });
    var state = {
      metric: metricNames.indexOf(p.get("metric")) >= 0 ? p.get("metric") : metricNames[0],
      stat: STATS.some(function (s) { return s.value === p.get("stat"); }) ? p.get("stat") : "mean",
      example: 0, block: "", head: MEAN, opacity: 60, search: ""
    };
    if (cls) {
      var wanted = parseInt(p.get("example"), 10);
      var at = E.stimuli.indexOf(wanted);
      state.example = at >= 0 ? at : 0;
      var blockKeys = cls.blocks;
      state.block = blockKeys.indexOf(p.get("block")) >= 0 ? p.get("block") : blockKeys[blockKeys.length - 1];
      var head = p.get("head");
      state.head = head !== null && /^[0-9]+$/.test(head) && Number(head) < S.heads ? Number(head) : MEAN;
      var op = parseInt(p.get("opacity"), 10);
      state.opacity = op >= 0 && op <= 100 ? op : 60;
    }
    var fixed = { displaylogo: false };

    function setHash() {
      var params = { metric: state.metric, stat: state.stat !== "mean" ? state.stat : null };
      if (cls && E.stimuli.length) {
        params.example = E.stimuli[state.example];
        params.block = state.block;
        params.head = state.head === MEAN ? null : state.head;
        params.opacity = state.opacity !== 60 ? state.opacity : null;
      }
      history.replaceState(null, "", api.route("transformer", [S.setKey, S.modelKey], params));
    }

    /* ---------------------------------------------------------------- header */
    view.appendChild(h("h1", null, "Transformer: " + S.model + " on " + S.set));
    var grid = T.grid ? T.grid.join(" × ") : "?";
    var patch = T.patch_size ? T.patch_size.join(" × ") : "?";
    view.appendChild(h("p", { class: "lead" },
      api.fmt(S.nStimuli) + " stimuli × " + S.nReplicates + " replicate(s); " + S.blocks.length + " block(s) with metrics, " +
      S.heads + " heads each; " + (T.prefix_tokens === undefined ? "?" : T.prefix_tokens) + " prefix token(s) before a " +
      grid + " grid of " + patch + "-pixel patches. From " + S.file + " in the results folder (definitions in docs/transformers.md)."));
    var controls = h("div", { class: "controls" });
    function uniq(list) { return list.filter(function (v, i) { return list.indexOf(v) === i; }); }
    var sets = uniq(info.models.map(function (m) { return m.setKey; }));
    controls.appendChild(api.select("Stimulus set", sets.map(function (k) {
      return { value: k, text: info.models.find(function (m) { return m.setKey === k; }).set };
    }), S.setKey, function (v) {
      var m = info.models.find(function (x) { return x.setKey === v && x.modelKey === S.modelKey; }) ||
        info.models.find(function (x) { return x.setKey === v; });
      location.hash = api.route("transformer", [m.setKey, m.modelKey]);
    }, { "data-control": "set" }));
    controls.appendChild(api.select("Model", info.models.filter(function (m) { return m.setKey === S.setKey; }).map(function (m) {
      return { value: m.modelKey, text: m.model };
    }), S.modelKey, function (v) {
      location.hash = api.route("transformer", [S.setKey, v]);
    }, { "data-control": "model" }));
    view.appendChild(controls);

    /* ---------------------------------------------------------------- metric heatmap */
    view.appendChild(h("h2", null, "Attention metrics per block and head"));
    var metricControls = h("div", { class: "controls" });
    metricControls.appendChild(api.select("Metric", S.metrics.map(function (m) {
      return { value: m.name, text: m.name + (m.units ? " (" + m.units + ")" : "") };
    }), state.metric, function (v) { state.metric = v; setHash(); drawMetric(); }, { "data-control": "metric" }));
    metricControls.appendChild(api.select("Statistic", STATS, state.stat, function (v) {
      state.stat = v; setHash(); drawMetric();
    }, { "data-control": "stat" }));
    view.appendChild(metricControls);
    var metricText = h("p", { class: "lead", id: "metric-text" });
    var metricPlot = h("div", { class: "plot heatmap", id: "metric-heatmap", role: "img", "aria-describedby": "metric-text" });
    var metricTable = h("div", { id: "metric-table-box" });
    view.appendChild(metricText);
    view.appendChild(metricPlot);
    view.appendChild(metricTable);

    function metric() { return S.metrics.find(function (m) { return m.name === state.metric; }); }

    function drawMetric() {
      var m = metric();
      var z = statTable(m, state.stat);
      var statName = STATS.find(function (s) { return s.value === state.stat; }).text;
      var unit = m.units || m.name;
      metricText.textContent = m.name + (m.units ? " (" + m.units + ")" : "") + ": " + m.definition + ". " +
        "Each cell: the " + statName + " over every exposure of the set (" + api.fmt(S.nStimuli) + " stimuli × " + S.nReplicates +
        " replicate(s)) of one head (column) in one block (row). Colours: viridis" +
        (m.bounded ? ", from 0 (dark purple) to 1 (yellow)." : ", from the smallest value (dark purple) to the largest (yellow).");
      var trace = {
        type: "heatmap", z: z,
        x: m.columns.map(api.plotText), y: m.rows.map(api.plotText),
        colorscale: "Viridis",
        zmin: m.bounded ? 0 : undefined, zmax: m.bounded ? 1 : undefined,
        colorbar: { title: { text: api.plotText(unit) } },
        hovertemplate: "%{y}, head %{x}<br>" + api.plotText(statName + " of " + m.name) + " %{z:.4g}<extra></extra>"
      };
      var height = Math.min(720, Math.max(300, 120 + 28 * m.rows.length));
      var layout = {
        height: height, margin: { t: 20, l: 90, r: 20, b: 50 },
        xaxis: { title: { text: "head" }, type: "category", automargin: true },
        yaxis: { title: { text: "block" }, type: "category", autorange: "reversed", automargin: true },
        font: { family: "system-ui, sans-serif", size: 12 }
      };
      metricPlot.setAttribute("aria-label", "Heatmap: " + statName + " of " + m.name + " for each block (rows) and head (columns); the table below lists the same numbers");
      var showMean = state.stat === "mean";
      var columns = ["block"].concat(m.columns.map(function (c) { return { text: c, num: true }; }));
      if (showMean) columns.push({ text: "mean over heads", num: true });
      var rows = m.rows.map(function (b, i) {
        var row = [b].concat(z[i].map(function (v) { return api.fmt(v, 4); }));
        if (showMean) row.push(api.fmt(avg(z[i]), 4));
        return row;
      });
      metricTable.replaceChildren(h("p", { class: "keys" }, "The same numbers (" + statName + " of " + m.name + (m.units ? ", " + m.units : "") + "):"),
        api.table(columns, rows, { id: "metric-table" }));
      var stamp = state.metric + "|" + state.stat;
      return Plotly.react(metricPlot, [trace], layout, fixed).then(function () { metricPlot.dataset.state = stamp; });
    }

    /* ---------------------------------------------------------------- class-token attention */
    view.appendChild(h("h2", { id: "cls-heading" }, "The class token's attention over an example"));
    if (!cls) {
      view.appendChild(h("p", { class: "note", id: "cls-none" },
        "This model stores no attention pattern with the class token's row. List one under its layers, e.g. " +
        "{name: blocks.11.attn.pattern, reduce: cls_row}, to see here where the class token looks in each example (docs/transformers.md)."));
      setHash();
      var other = otherMaps(api, info);
      if (other) other.forEach(function (el) { view.appendChild(el); });
      return drawMetric();
    }
    if (!E.stimuli.length) {
      view.appendChild(h("p", { class: "note" }, "No example of this set has stored attention."));
      setHash();
      return drawMetric();
    }
    var rowsN = cls.grid[0];
    var colsN = cls.grid[1];
    var ph = cls.patchSize ? cls.patchSize[0] : 1;
    var pw = cls.patchSize ? cls.patchSize[1] : 1;
    view.appendChild(h("p", { class: "lead" },
      "For " + E.stimuli.length + " of the " + api.fmt(S.nStimuli) + " stimuli (evenly spaced over the set; site.attention_examples), " +
      "the class token's attention to each patch in the stored block(s) " + cls.blocks.join(", ") + ", laid over the model's input. " +
      "Choose an example by id or from the list; the keys n / p step through them."));
    var clsControls = h("div", { class: "controls" });
    var searchId = "ctl-example-search";
    var search = h("input", { type: "search", id: searchId, "data-control": "example-search", placeholder: "part of an id", autocomplete: "off", "aria-describedby": "example-count" });
    var count = h("span", { id: "example-count", class: "keys", "aria-live": "polite" });
    clsControls.appendChild(h("label", { for: searchId }, "Find example", search, count));
    var exampleBox = h("span");
    clsControls.appendChild(exampleBox);
    clsControls.appendChild(api.select("Block", cls.blocks.map(function (b) { return { value: b, text: b + " (" + cls.reduce[b] + ")" }; }),
      state.block, function (v) { state.block = v; update(); }, { "data-control": "block" }));
    var heads = [{ value: MEAN, text: "mean over heads" }];
    for (var k = 0; k < S.heads; k++) heads.push({ value: String(k), text: "head " + k });
    clsControls.appendChild(api.select("Head", heads, String(state.head), function (v) {
      state.head = v === MEAN ? MEAN : Number(v); update();
    }, { "data-control": "head" }));
    var opacityId = "ctl-opacity";
    var opacity = h("input", { type: "range", id: opacityId, min: "0", max: "100", step: "5", value: String(state.opacity), "data-control": "opacity" });
    var opacityText = h("span", { class: "keys" }, state.opacity + "%");
    opacity.addEventListener("input", function () {
      state.opacity = Number(opacity.value);
      opacityText.textContent = state.opacity + "%";
      setHash();
      if (overlayPlot.data) Plotly.restyle(overlayPlot, { opacity: state.opacity / 100 }, [0]);
    });
    clsControls.appendChild(h("label", { for: opacityId }, "Map opacity", opacity, opacityText));
    view.appendChild(clsControls);

    var overlayText = h("p", { class: "lead", id: "cls-text" });
    var overlayBox = h("div", { class: "overlay-box" });
    var overlayPlot = h("div", { class: "plot overlay", id: "cls-overlay", role: "img", "aria-describedby": "cls-text" });
    var facts = h("div", { class: "overlay-facts" });
    overlayBox.appendChild(overlayPlot);
    overlayBox.appendChild(facts);
    view.appendChild(overlayText);
    view.appendChild(overlayBox);
    var alignText = h("p", { class: "keys", id: "cls-alignment" });
    view.appendChild(alignText);
    var gridTable = h("div");
    view.appendChild(gridTable);

    function filtered() {
      var q = state.search.toLowerCase();
      var out = [];
      E.ids.forEach(function (id, i) { if (!q || id.toLowerCase().indexOf(q) >= 0) out.push(i); });
      return out;
    }
    function exampleSelect() {
      var shown = filtered();
      if (shown.indexOf(state.example) < 0 && shown.length) state.example = shown[0];
      count.textContent = state.search ? shown.length + " of " + E.ids.length + " match" : E.ids.length + " examples";
      var sel = api.select("Example", shown.map(function (i) { return { value: String(i), text: E.ids[i] }; }),
        String(state.example), function (v) { state.example = Number(v); update(); }, { "data-control": "example" });
      exampleBox.replaceChildren(sel);
      return shown;
    }
    search.addEventListener("input", function () {
      var before = state.example;
      state.search = search.value;
      exampleSelect();
      if (state.example !== before) update();
    });
    exampleSelect();

    function step(delta) {
      var shown = filtered();
      var at = shown.indexOf(state.example);
      var next = shown[at + delta];
      if (next === undefined) return;
      state.example = next;
      exampleSelect();
      update();
    }
    api.keys({ n: function () { step(1); }, p: function () { step(-1); } });

    function describePre(pre, input) {
      var size = input ? input[0] + " × " + input[1] + " px" : (pre.size ? pre.size + " × " + pre.size + " px" : "its own size");
      var how;
      if (pre.crop_mode === "squash") how = "squashed to " + pre.resize + " × " + pre.resize + " px, then its centre " + size + " cropped";
      else if (pre.crop_mode === "border") how = "its longer side resized to " + pre.resize + " px, padded, then its centre " + size + " cropped";
      else if (pre.size) how = "its shorter side resized to " + pre.resize + " px, then its centre " + size + " cropped";
      else if (pre.resize) how = "its shorter side resized to " + pre.resize + " px";
      else how = "taken as it is (" + size + ")";
      return how;
    }

    var token = 0;
    function update() {
      setHash();
      return drawOverlay().catch(function (err) {
        if (!alive()) return;
        overlayText.textContent = "This map could not be drawn: " + (err && err.message ? err.message : String(err));
        if (window.console) console.error(err);
      });
    }

    function drawOverlay() {
      var mine = ++token;
      var i = state.example;
      var stimulus = E.stimuli[i];
      var key = base() + "/cls/" + state.block + "/" + stimulus;
      return api.load(key).then(function (data) {
        if (mine !== token || !alive()) return null;
        var perHead = data.patches;
        var z;
        var prefix;
        if (state.head === MEAN) {
          z = [];
          for (var r = 0; r < rowsN; r++) {
            var row = [];
            for (var c = 0; c < colsN; c++) row.push(avg(perHead.map(function (g) { return g[r][c]; })));
            z.push(row);
          }
          prefix = avg(data.prefix);
        } else {
          z = perHead[state.head];
          prefix = data.prefix[state.head];
        }
        var max = 0;
        z.forEach(function (row) { row.forEach(function (v) { if (v > max) max = v; }); });
        var id = E.ids[i];
        var image = E.images[i];
        var input = E.inputs[i];
        var headText = state.head === MEAN ? "the mean over the " + S.heads + " heads" : "head " + state.head;
        overlayText.textContent = state.block + ", " + headText + ": the class token's attention to each of the " + rowsN + " × " + colsN +
          " patches of " + id + " (replicate 0" + (E.jitter && E.jitter[i] ? ", jittered" : ", unjittered") + "). It gives " + pct(prefix) +
          " of its attention to the " + cls.prefixTokens + " prefix token(s) (the class token itself first" + (cls.prefixTokens > 1 ? ", then distillation or register tokens" : "") +
          ") and " + pct(1 - prefix) + " to the patches drawn. Colours: viridis from 0 (dark purple) to this map's largest value, " +
          api.fmt(max, 4) + " (yellow), at " + state.opacity + "% opacity over the image.";
        var pre = cls.preprocess || {};
        alignText.textContent = image
          ? "Alignment: the picture is the model's input, the image " + describePre(pre, input) + " (preprocessing " + (pre.preset || "?") +
            ", before normalisation and jitter). Patch (row r, column c) covers input pixels " + ph + "·r … " + ph + "·(r+1) − 1 down and " +
            pw + "·c … " + pw + "·(c+1) − 1 across; the tokens after the prefix run over the patches row by row."
          : "The image of " + id + " was not found when the site was built (the stimulus folder recorded in the activation file): the map is drawn alone.";
        var exW = input ? input[0] / pw : colsN;
        var exH = input ? input[1] / ph : rowsN;
        var trace = {
          type: "heatmap", z: z, x: z[0].map(function (v, c) { return c; }), y: z.map(function (v, r) { return r; }),
          colorscale: "Viridis", zmin: 0, zmax: max > 0 ? max : 1, opacity: state.opacity / 100,
          colorbar: { title: { text: "attention" } }, xgap: 0, ygap: 0,
          hovertemplate: "patch row %{y}, column %{x}<br>attention %{z:.4f}<extra></extra>"
        };
        var side = Math.min(560, Math.max(320, overlayBox.clientWidth - 300));
        var layout = {
          width: side + 110, height: Math.round(side * (exH * ph) / (exW * pw)) + 70,
          margin: { t: 10, l: 50, r: 10, b: 50 },
          xaxis: { title: { text: "patch column" }, range: [-0.5, exW - 0.5], showgrid: false, zeroline: false, constrain: "domain", dtick: colsN > 16 ? 2 : 1 },
          yaxis: { title: { text: "patch row" }, range: [exH - 0.5, -0.5], showgrid: false, zeroline: false, scaleanchor: "x", scaleratio: ph / pw, constrain: "domain", dtick: rowsN > 16 ? 2 : 1 },
          images: image ? [{ source: image, xref: "x", yref: "y", x: -0.5, y: -0.5, sizex: exW, sizey: exH, xanchor: "left", yanchor: "top", sizing: "stretch", layer: "below" }] : [],
          font: { family: "system-ui, sans-serif", size: 12 }
        };
        overlayPlot.setAttribute("aria-label", "The class token's attention over the patches of " + id + ", " + state.block + ", " + headText +
          ", drawn over the image; the text above gives the share on the prefix tokens, the table below every value");
        drawFacts(i, prefix, data);
        gridTable.replaceChildren(gridDetails(z, id));
        var stamp = [stimulus, state.block, state.head].join("|");
        return Plotly.react(overlayPlot, [trace], layout, fixed).then(function () {
          if (mine === token) overlayPlot.dataset.state = stamp;
        });
      });
    }

    function base() { return "transformer/" + S.setKey + "/" + S.modelKey; }

    function drawFacts(i, prefix, data) {
      var list = h("dl", { class: "facts", id: "cls-facts" });
      function fact(term, value) { list.appendChild(h("dt", null, term)); list.appendChild(h("dd", null, value)); }
      fact("example", E.ids[i]);
      fact("stimulus", "number " + E.stimuli[i] + " of the set");
      if (E.jitter && E.jitter[i]) {
        var j = E.jitter[i];
        fact("replicate 0 jitter", "shift " + j[0] + ", " + j[1] + " px, rotation " + j[2].toFixed(1) + "°, scale " + j[3].toFixed(3) + " (not applied to the picture)");
      }
      fact("on the prefix tokens", pct(prefix) + " (per head: " + data.prefix.map(function (v, k) { return "h" + k + " " + pct(v); }).join(", ") + ")");
      var runs = (E.runs || []).filter(function (r) { return r.examples[i] >= 0; });
      if (runs.length) {
        fact("in the cluster paths", runs.map(function (r, n) {
          return [n ? ", " : "", api.link(r.pset, "example", r.key.split("/").concat([r.examples[i]]))];
        }));
      }
      facts.replaceChildren(list);
    }

    function gridDetails(z, id) {
      var details = h("details", { id: "cls-table" }, h("summary", null, "Every value of the map as a table (" + rowsN + " × " + colsN + ")"));
      details.appendChild(api.table(["row"].concat(z[0].map(function (v, c) { return { text: "column " + c, num: true }; })),
        z.map(function (row, r) { return [String(r)].concat(row.map(function (v) { return api.fmt(v, 4); })); }),
        { "aria-label": "Class-token attention of " + id }));
      return details;
    }

    setHash();
    var work = [drawMetric(), drawOverlay()];
    var other = otherMaps(api, info);
    if (other) other.forEach(function (el) { view.appendChild(el); });
    return Promise.all(work);
  }
})();
