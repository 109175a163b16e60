/* One cluster: size, label composition, where its members come from and go to, and a paged
 * montage of its members, nearest to the centroid first. */
(function () {
  "use strict";

  function ordinal(n) {
    var s = ["th", "st", "nd", "rd"];
    var v = n % 100;
    return n + (s[(v - 20) % 10] || s[v] || s[0]);
  }

  function flowTable(api, run, links, j, c, direction, size) {
    /* Clusters of the previous (direction -1) or next (+1) layer and how many members. */
    var h = api.h;
    var other = j + direction;
    var pairs = direction > 0 ? links[j] : links[j - 1];
    var rows = [];
    pairs.forEach(function (l) {
      if (direction > 0 && l[0] === c) rows.push([l[1], l[2]]);
      if (direction < 0 && l[1] === c) rows.push([l[0], l[2]]);
    });
    rows.sort(function (a, b) { return b[1] - a[1] || a[0] - b[0]; });
    var layer = run.layers[other];
    return h("section", null,
      h("h3", null, (direction > 0 ? "Goes to " : "Comes from ") + layer.name),
      rows.length ? api.table(["cluster", { text: "members", num: true }, { text: "share", num: true }, ""], rows.map(function (r) {
        return [
          api.link("cluster " + r[0], "cluster", run.key.split("/").concat([layer.key, r[0]])),
          api.fmt(r[1]), api.percent(r[1], size),
          h("span", { class: "bar", style: "width:" + Math.round(120 * r[1] / size) + "px" })
        ];
      })) : h("p", { class: "note" }, "None (members dropped at that layer)."));
  }

  actpipe.page({
    name: "cluster",
    title: "Cluster",
    render: function (view, route, api, alive) {
      var h = api.h;
      if (route.args.length < 5) throw new Error("a cluster page needs #/cluster/{set}/{model}/{parameter set}/{layer}/{cluster}");
      var key = route.args.slice(0, 3).join("/");
      var layerKey = route.args[3];
      var c = parseInt(route.args[4], 10);
      var entry = api.runEntry(key);
      if (!entry) throw new Error("no run " + key + " in this site");
      var set = api.setEntry(entry.set);
      return Promise.all([
        api.load("runs/" + key + "/run"),
        api.load("sets/" + set.key + "/labels"),
        api.load("runs/" + key + "/layers/" + layerKey),
        api.load("runs/" + key + "/transitions")
      ]).then(function (parts) {
        if (!alive()) return null;
        var run = parts[0];
        var labels = parts[1];
        var layerData = parts[2];
        var transitions = parts[3];
        var j = run.layers.findIndex(function (l) { return l.key === layerKey; });
        if (j < 0 || !(c >= 0 && c < run.layers[j].k)) throw new Error("no such cluster in this run");
        var layer = run.layers[j];
        var size = layer.sizes[c];
        var perPage = run.options.perPage;
        var pages = Math.max(1, Math.ceil(size / perPage));
        var page = Math.min(pages - 1, Math.max(0, (parseInt(route.params.get("page"), 10) || 1) - 1));

        view.appendChild(h("h1", null, "Cluster " + c + " of layer " + layer.name));
        view.appendChild(h("p", { class: "lead" },
          api.link(run.model + " on " + run.set + ", " + run.pset, "paths", key.split("/")),
          " · layer " + (j + 1) + " of " + run.layers.length,
          c > 0 ? [" · ", api.link("previous cluster", "cluster", key.split("/").concat([layerKey, c - 1]))] : null,
          c + 1 < layer.k ? [" · ", api.link("next cluster", "cluster", key.split("/").concat([layerKey, c + 1]))] : null));

        var facts = h("dl", { class: "facts" });
        function fact(term, value) { facts.appendChild(h("dt", null, term)); facts.appendChild(h("dd", null, value)); }
        fact("members", api.fmt(size) + " (" + api.percent(size, run.n) + " of " + api.fmt(run.n) + " examples)");
        run.labels.forEach(function (col) {
          var code = layer.majority[col][c];
          if (code === null || code === undefined) return;
          fact("majority " + col, labels.values[col][code] + " (" + api.percent(Math.round(layer.share[col][c] * size), size) + ")");
        });
        if (layerData.distance && layerData.distance[c]) {
          var d = layerData.distance[c];
          fact("distance to centroid", "nearest " + Number(d[0]).toPrecision(4) + ", median " + Number(d[1]).toPrecision(4) + ", farthest " + Number(d[2]).toPrecision(4));
        }
        if (layer.space) fact("feature space", layer.space + (layer.dim ? " (" + layer.dim + " features clustered)" : ""));
        view.appendChild(facts);

        if (run.labels.length) {
          view.appendChild(h("h2", null, "Label composition"));
          var comp = h("div", { class: "cluster-grid" });
          run.labels.forEach(function (col) {
            var colours = api.palette(labels.values[col].length);
            var rows = layerData.composition[col][c].map(function (pair) {
              return [
                h("span", null, h("span", { class: "swatch", style: "background:" + colours[pair[0]] }), labels.values[col][pair[0]]),
                api.fmt(pair[1]), api.percent(pair[1], size),
                h("span", { class: "bar", style: "width:" + Math.round(120 * pair[1] / size) + "px" })
              ];
            });
            var rest = layerData.rest[col][c];
            if (rest) rows.push(["other values", api.fmt(rest), api.percent(rest, size), ""]);
            comp.appendChild(h("section", null, h("h3", null, col),
              api.table(["value", { text: "members", num: true }, { text: "share", num: true }, ""], rows)));
          });
          view.appendChild(comp);
        }

        if (run.layers.length > 1) {
          view.appendChild(h("h2", null, "Where its members come from and go"));
          var flows = h("div", { class: "cluster-grid" });
          if (j > 0) flows.appendChild(flowTable(api, run, transitions.links, j, c, -1, size));
          if (j + 1 < run.layers.length) flows.appendChild(flowTable(api, run, transitions.links, j, c, +1, size));
          view.appendChild(flows);
        }

        var ordered = run.distances ? "nearest to the centroid first" : "in example order (no distances were computed for this run)";
        view.appendChild(h("h2", { id: "members-heading" }, "Members"));
        view.appendChild(h("p", { class: "lead" }, api.fmt(size) + " members, " + ordered + ". Click an image to see its path."));
        var pager = h("div", { class: "pager", role: "navigation", "aria-label": "Pages of members" });
        var prev = h("button", { type: "button", disabled: page === 0 }, "← previous");
        var next = h("button", { type: "button", disabled: page + 1 >= pages }, "next →");
        function goTo(p) { location.hash = api.route("cluster", key.split("/").concat([layerKey, c]), p ? { page: p + 1 } : null); }
        prev.addEventListener("click", function () { if (page > 0) goTo(page - 1); });
        next.addEventListener("click", function () { if (page + 1 < pages) goTo(page + 1); });
        pager.appendChild(prev);
        pager.appendChild(h("span", { "aria-live": "polite" }, "page " + (page + 1) + " of " + pages));
        pager.appendChild(next);
        pager.appendChild(h("span", { class: "keys" }, "keys: ", h("kbd", null, "p"), " previous, ", h("kbd", null, "n"), " next page"));
        view.appendChild(pager);
        api.keys({
          n: function () { if (page + 1 < pages) goTo(page + 1); },
          p: function () { if (page > 0) goTo(page - 1); }
        });

        var montage = h("ul", { class: "montage", id: "members", "aria-labelledby": "members-heading" });
        view.appendChild(montage);
        var first = page * perPage;
        var last = Math.min(size, first + perPage);
        if (last <= first) return null;
        var chunk = run.chunks.members;
        var chunkLoads = [];
        for (var q = Math.floor(first / chunk); q <= Math.floor((last - 1) / chunk); q++) {
          chunkLoads.push(api.load("runs/" + key + "/members/" + layerKey + "/" + c + "-" + q));
        }
        return Promise.all(chunkLoads).then(function (chunks) {
          var members = [];
          var base = Math.floor(first / chunk) * chunk;
          for (var i = first; i < last; i++) {
            var part = chunks[Math.floor((i - base) / chunk)];
            var at = (i - base) % chunk;
            members.push({ rank: i, example: part.e[at], stimulus: part.s ? part.s[at] : part.e[at], distance: part.d ? part.d[at] : null, replicate: part.r ? part.r[at] : null });
          }
          return api.stimuli(set, members.map(function (m) { return m.stimulus; })).then(function (infos) {
            if (!alive()) return;
            members.forEach(function (m, i) {
              var s = infos[i];
              var id = m.replicate !== null && m.replicate >= 0 ? s.id + "#" + m.replicate : s.id;
              var where = run.distances ? ordinal(m.rank + 1) + " nearest to the centroid" : "member " + (m.rank + 1);
              var alt = id + (Object.keys(s.labels).length ? " (" + api.labelText(s.labels) + ")" : "") + ", " + where;
              var picture = s.src
                ? h("img", { src: s.src, alt: alt, width: s.width || 64, height: s.height || 64, loading: "lazy" })
                : h("span", { class: "thumb-missing", role: "img", "aria-label": alt }, "image could not be read");
              montage.appendChild(h("li", { dataset: { exampleId: id, example: String(m.example) } },
                h("a", { href: api.route("example", key.split("/").concat([m.example])), title: alt },
                  picture,
                  h("span", { class: "caption" }, id),
                  h("span", { class: "caption sub" }, m.distance !== null ? "d = " + Number(m.distance).toPrecision(3) : "#" + (m.rank + 1)))));
            });
          });
        });
      });
    }
  });
})();
