/* One example: its image, labels and its path through the layers, highlighted in the flow. */
(function () {
  "use strict";

  function ordinal(n) {
    var s = ["th", "st", "nd", "rd"];
    var v = n % 100;
    return n + (s[(v - 20) % 10] || s[v] || s[0]);
  }

  actpipe.page({
    name: "example",
    title: "Example",
    render: function (view, route, api, alive) {
      var h = api.h;
      if (route.args.length < 4) throw new Error("an example page needs #/example/{set}/{model}/{parameter set}/{index}");
      var key = route.args.slice(0, 3).join("/");
      var e = parseInt(route.args[3], 10);
      var entry = api.runEntry(key);
      if (!entry) throw new Error("no run " + key + " in this site");
      if (!(e >= 0 && e < entry.n)) throw new Error("this run has examples 0 to " + (entry.n - 1));
      var set = api.setEntry(entry.set);
      return Promise.all([api.load("runs/" + key + "/run"), api.load("sets/" + set.key + "/labels")]).then(function (parts) {
        var run = parts[0];
        var labels = parts[1];
        var size = run.chunks.paths;
        return api.load("runs/" + key + "/paths/" + Math.floor(e / size)).then(function (chunk) {
          var at = e % size;
          var ex = {
            id: chunk.ids ? chunk.ids[at] : null, stimulus: chunk.s ? chunk.s[at] : e, path: chunk.p[at], count: chunk.pc[at], rank: chunk.pr[at],
            ranks: chunk.rk[at], distances: chunk.d ? chunk.d[at] : null, replicate: chunk.r ? chunk.r[at] : -1
          };
          return api.stimuli(set, [ex.stimulus]).then(function (infos) {
            if (!alive()) return null;
            if (ex.id === null) ex.id = infos[0].id;
            return draw(view, api, run, labels, set, key, e, ex, infos[0], route);
          });
        });
      });
    }
  });

  function draw(view, api, run, labels, set, key, e, ex, stim, route) {
    var h = api.h;
    view.appendChild(h("h1", null, "Example " + ex.id));
    var nav = [api.link(run.model + " on " + run.set + ", " + run.pset, "paths", key.split("/"))];
    if (e > 0) nav.push(" · ", api.link("previous example", "example", key.split("/").concat([e - 1])));
    if (e + 1 < run.n) nav.push(" · ", api.link("next example", "example", key.split("/").concat([e + 1])));
    nav.push(h("span", { class: "keys" }, " (keys ", h("kbd", null, "p"), " / ", h("kbd", null, "n"), ")"));
    view.appendChild(h("p", { class: "lead" }, nav));
    api.keys({
      n: function () { if (e + 1 < run.n) location.hash = api.route("example", key.split("/").concat([e + 1])); },
      p: function () { if (e > 0) location.hash = api.route("example", key.split("/").concat([e - 1])); }
    });

    var alt = ex.id + (Object.keys(stim.labels).length ? " (" + api.labelText(stim.labels) + ")" : "");
    var picture = stim.src
      ? h("img", { class: "example-image", src: stim.src, alt: alt, width: 192, height: 192 })
      : h("span", { class: "thumb-missing example-image", role: "img", "aria-label": alt }, "image could not be read");
    var facts = h("dl", { class: "facts", id: "example-facts" });
    function fact(term, value) { facts.appendChild(h("dt", null, term)); facts.appendChild(h("dd", null, value)); }
    fact("stimulus", stim.id);
    if (ex.replicate >= 0) fact("replicate", String(ex.replicate));
    Object.keys(stim.labels).forEach(function (col) { fact(col, stim.labels[col]); });
    var complete = ex.path.every(function (c) { return c >= 0; });
    if (complete) {
      fact("its path", "taken by " + api.fmt(ex.count) + " example(s) (" + api.percent(ex.count, run.n) + "), the " +
        ordinal(ex.rank + 1) + " most common of " + api.fmt(run.distinct));
    } else {
      var dropped = run.layers.filter(function (l, j) { return ex.path[j] < 0; }).map(function (l) { return l.name; });
      fact("its path", "incomplete: dropped at " + dropped.join(", ") + " (non-finite activations)");
    }
    view.appendChild(h("div", { class: "example-head" }, picture, facts));
    var attention = attentionLink(api, run, ex.stimulus, fact);

    view.appendChild(h("h2", null, "Its path through the layers"));
    var rows = run.layers.map(function (layer, j) {
      var c = ex.path[j];
      if (c < 0) return [layer.name, "dropped", "–", "–", "–", "–"];
      var maj = run.labels.map(function (col) {
        var code = layer.majority[col][c];
        return code === null || code === undefined ? null : col + " " + labels.values[col][code] + " (" + Math.round(100 * layer.share[col][c]) + "%)";
      }).filter(Boolean).join(", ");
      return [
        layer.name,
        api.link("cluster " + c, "cluster", key.split("/").concat([layer.key, c]), ex.ranks[j] >= 0 ? { page: Math.floor(ex.ranks[j] / run.options.perPage) + 1 } : null,
          { dataset: { layer: String(j), cluster: String(c) } }),
        api.fmt(layer.sizes[c]),
        maj || "–",
        ex.distances && ex.distances[j] !== null ? Number(ex.distances[j]).toPrecision(4) : "–",
        run.distances ? ordinal(ex.ranks[j] + 1) + " of " + api.fmt(layer.sizes[c]) : "–"
      ];
    });
    view.appendChild(api.table(["layer", "cluster", { text: "members", num: true }, "majority label", { text: "distance to centroid", num: true }, "nearness rank"], rows, { id: "example-path" }));

    var column = run.labels.indexOf(route.params.get("label")) >= 0 ? route.params.get("label") : (run.labels[0] || "");
    var n = Math.max(1, Math.min(run.top.paths.length || 1, parseInt(route.params.get("n"), 10) || run.options.topPaths));
    view.appendChild(h("h2", null, "In the flow"));
    view.appendChild(h("p", { class: "lead" }, "Its path is highlighted among the " + Math.min(n, run.top.paths.length) +
      " most common paths" + (complete && ex.rank >= n ? " (it is not one of them: it is drawn as well)." : ".")));
    var flowBox = h("div", { class: "plot flow", id: "flow", role: "img", "aria-label": "Sankey diagram with this example's path highlighted; the table above lists the same path" });
    view.appendChild(flowBox);
    var legendBox = h("div");
    view.appendChild(legendBox);

    var others = api.index.runs.filter(function (r) {
      return r.set === run.set && r.key !== key && r.signature === run.signature;
    });
    if (others.length) {
      view.appendChild(h("h2", null, "The same example in other runs"));
      view.appendChild(h("ul", null, others.map(function (r) {
        return h("li", null, api.link(r.model + ", " + r.pset, "example", r.key.split("/").concat([e])));
      })));
    }

    return Promise.all([attention, actpipe.flow.draw(flowBox, run, labels, {
      n: n, showOther: true, column: column, path: ex.path, pathRank: ex.rank, pathCount: ex.count,
      onNode: function (j, c) { location.hash = api.route("cluster", key.split("/").concat([run.layers[j].key, c])); }
    }).then(function (result) {
      var lg = actpipe.flow.legend(result.colours, column);
      if (lg) legendBox.appendChild(lg);
    })]);
  }

  /* "Attention of this example" when the run's model stores the class token's attention and
   * the transformer page has this stimulus among its examples. */
  function attentionLink(api, run, stimulus, fact) {
    var info = api.hasPage("transformer") ? api.pageInfo("transformer") : null;
    var entry = info && info.models ? info.models.find(function (m) { return m.set === run.set && m.model === run.model && m.cls; }) : null;
    if (!entry) return Promise.resolve();
    return api.load("transformer/" + entry.setKey + "/" + entry.modelKey + "/examples").then(function (E) {
      if (E.stimuli.indexOf(stimulus) >= 0) {
        fact("attention", api.link("attention of this example", "transformer", [entry.setKey, entry.modelKey], { example: stimulus }, { id: "attention-link" }));
      } else {
        fact("attention", "not among the " + E.stimuli.length + " stimuli whose class-token attention the site shows (site.attention_examples)");
      }
    });
  }
})();
