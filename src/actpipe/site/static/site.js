/* actpipe results site: the core shared by every page.
 *
 * - Data: data files are scripts that call actpipeData(key, value); load(key) injects the
 *   script of data/{key}.js once and resolves with the value (file:// pages cannot fetch()).
 * - Pages: actpipe.page({name, title, render(view, route, api)}) registers a page; the
 *   router calls render for #/{name}/{args...}?{params} with a fresh <div> to fill.
 * - DOM: h(tag, attrs, ...children) builds elements; text goes through textContent only,
 *   never parsed as markup, so names and labels from the data always show as text.
 * - Plotly: api.plotly() loads the vendored plotly.js on first use; api.plotText() escapes
 *   text for Plotly's labels and hover boxes (Plotly reads a little HTML in them).
 * - Colours: api.palette(n) is colour-blind safe: Okabe-Ito up to 8 colours, then
 *   Paul Tol's discrete rainbow (up to 23, repeated beyond).
 */
(function () {
  "use strict";

  var KEY = /^[A-Za-z0-9_.~-]+(\/[A-Za-z0-9_.~-]+)*$/;
  var MAX_CACHED = 400;
  var store = new Map();
  var waiting = new Map();
  var pages = new Map();
  var index = null;
  var plotlyPromise = null;
  var renderCount = 0;

  /* ------------------------------------------------------------------ data loading */

  window.actpipeData = function (key, value) {
    store.set(key, value);
    if (store.size > MAX_CACHED) {
      for (var k of store.keys()) {
        if (store.size <= MAX_CACHED) break;
        if (k !== "index" && !waiting.has(k)) store.delete(k);
      }
    }
    var w = waiting.get(key);
    if (w) {
      waiting.delete(key);
      w.resolve(value);
    }
    if (key === "index") {
      index = value;
      start();
    }
  };

  function load(key) {
    if (!KEY.test(key)) return Promise.reject(new Error("not a data key: " + key));
    if (store.has(key)) return Promise.resolve(store.get(key));
    if (waiting.has(key)) return waiting.get(key).promise;
    var entry = {};
    entry.promise = new Promise(function (resolve, reject) {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    waiting.set(key, entry);
    var script = document.createElement("script");
    script.src = "data/" + key + ".js";
    script.async = true;
    script.onload = function () {
      script.remove();
      if (waiting.get(key) === entry) {
        waiting.delete(key);
        entry.reject(new Error("data/" + key + ".js did not hold " + key));
      }
    };
    script.onerror = function () {
      script.remove();
      waiting.delete(key);
      entry.reject(new Error("cannot load data/" + key + ".js (is the site complete?)"));
    };
    document.head.appendChild(script);
    return entry.promise;
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = src;
      script.onload = function () { resolve(); };
      script.onerror = function () { reject(new Error("cannot load " + src)); };
      document.head.appendChild(script);
    });
  }

  function plotly() {
    if (!plotlyPromise) {
      plotlyPromise = loadScript(index.plotly).then(function () {
        if (!window.Plotly) throw new Error(index.plotly + " did not define Plotly");
        return window.Plotly;
      });
    }
    return plotlyPromise;
  }

  /* ------------------------------------------------------------------ DOM helpers */

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === "text") el.textContent = String(value);
        else if (name === "class") el.className = value;
        else if (name === "dataset") Object.assign(el.dataset, value);
        else if (name.slice(0, 2) === "on" && typeof value === "function") {
          el.addEventListener(name.slice(2), value);
        } else el.setAttribute(name, value === true ? "" : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      child.forEach(function (c) { append(el, c); });
    } else if (child instanceof Node) {
      el.appendChild(child);
    } else {
      el.appendChild(document.createTextNode(String(child)));
    }
  }

  function route(page, args, params) {
    var parts = [page].concat(args || []).map(function (part) {
      var text = String(part);
      if (!/^[A-Za-z0-9_.~-]+$/.test(text)) throw new Error("not a route part: " + text);
      return text;
    });
    var query = "";
    if (params) {
      var search = new URLSearchParams();
      Object.keys(params).forEach(function (k) {
        if (params[k] !== null && params[k] !== undefined && params[k] !== "") {
          search.set(k, String(params[k]));
        }
      });
      query = search.toString() ? "?" + search.toString() : "";
    }
    return "#/" + parts.join("/") + query;
  }

  function link(text, page, args, params, attrs) {
    return h("a", Object.assign({ href: route(page, args, params) }, attrs || {}), text);
  }

  function plotText(value) {
    return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function fmt(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return value.toLocaleString("en");
    return value.toFixed(digits === undefined ? 3 : digits);
  }

  function percent(part, whole) {
    if (!whole) return "–";
    return (100 * part / whole).toFixed(part === whole || part === 0 ? 0 : 1) + "%";
  }

  function table(columns, rows, attrs) {
    return h("div", { class: "scroll" },
      h("table", attrs || null,
        h("thead", null, h("tr", null, columns.map(function (c) {
          var name = typeof c === "string" ? c : c.text;
          return h("th", { scope: "col", class: c.num ? "num" : null }, name);
        }))),
        h("tbody", null, rows.map(function (row) {
          var tr = h("tr");
          row.forEach(function (cell, i) {
            var c = columns[i];
            var num = typeof c === "object" && c.num;
            tr.appendChild(h("td", { class: num ? "num" : null }, cell));
          });
          return tr;
        }))));
  }

  function select(labelText, options, value, onchange, attrs) {
    var id = "ctl-" + labelText.replace(/[^A-Za-z0-9]+/g, "-").toLowerCase() + "-" + (++renderCount);
    var sel = h("select", Object.assign({ id: id }, attrs || {}));
    options.forEach(function (o) {
      var opt = h("option", { value: o.value }, o.text);
      if (String(o.value) === String(value)) opt.selected = true;
      sel.appendChild(opt);
    });
    sel.addEventListener("change", function () { onchange(sel.value); });
    return h("label", { for: id }, labelText, sel);
  }

  /* ------------------------------------------------------------------ colours */

  var OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
  var TOL_RAINBOW = ["#E8ECFB", "#D9CCE3", "#D1BBD7", "#CAACCB", "#BA8DB4", "#AE76A3", "#AA6F9E",
    "#994F88", "#882E72", "#1965B0", "#437DBF", "#5289C7", "#6195CF", "#7BAFDE", "#4EB265",
    "#90C987", "#CAE0AB", "#F7F056", "#F7CB45", "#F6C141", "#F4A736", "#F1932D", "#EE8026",
    "#E8601C", "#E65518", "#DC050C", "#A5170E", "#72190E", "#42150A"];
  var TOL_CUTS = {
    9: [9, 10, 14, 15, 17, 18, 23, 26, 28],
    10: [9, 10, 14, 15, 17, 18, 21, 24, 26, 28],
    11: [9, 10, 12, 14, 15, 17, 18, 21, 24, 26, 28],
    12: [3, 6, 9, 10, 12, 14, 15, 17, 18, 21, 24, 26],
    13: [3, 6, 9, 10, 12, 14, 15, 16, 17, 18, 21, 24, 26],
    14: [3, 6, 9, 10, 12, 14, 15, 16, 17, 18, 20, 22, 24, 26],
    15: [3, 6, 9, 10, 12, 14, 15, 16, 17, 18, 20, 22, 24, 26, 28],
    16: [3, 5, 7, 9, 10, 12, 14, 15, 16, 17, 18, 20, 22, 24, 26, 28],
    17: [3, 5, 7, 8, 9, 10, 12, 14, 15, 16, 17, 18, 20, 22, 24, 26, 28],
    18: [3, 5, 7, 8, 9, 10, 12, 14, 15, 16, 17, 18, 20, 22, 24, 26, 27, 28],
    19: [2, 4, 5, 7, 8, 9, 10, 12, 14, 15, 16, 17, 18, 20, 22, 24, 26, 27, 28],
    20: [2, 4, 5, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 20, 22, 24, 26, 27, 28],
    21: [2, 4, 5, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 21, 23, 25, 26, 27, 28],
    22: [2, 4, 5, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 21, 23, 25, 26, 27, 28, 29],
    23: [1, 2, 4, 5, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 21, 23, 25, 26, 27, 28, 29]
  };
  var OTHER_COLOUR = "#BBBBBB";

  function palette(n) {
    if (n <= OKABE_ITO.length) return OKABE_ITO.slice(0, Math.max(n, 1));
    var cut = TOL_CUTS[Math.min(n, 23)].map(function (i) { return TOL_RAINBOW[i - 1]; });
    var out = [];
    for (var i = 0; i < n; i++) out.push(cut[i % cut.length]);
    return out;
  }

  function legend(values, colours, note) {
    var list = h("ul", { class: "legend", "aria-label": "Colour legend" });
    values.forEach(function (v, i) {
      list.appendChild(h("li", null, h("span", { class: "swatch", style: "background:" + colours[i] }), v));
    });
    if (note) list.appendChild(h("li", { class: "keys" }, note));
    return list;
  }

  /* ------------------------------------------------------------------ shared lookups */

  function runEntry(key) {
    return index.runs.find(function (r) { return r.key === key; }) || null;
  }

  function setEntry(name) {
    return index.sets.find(function (s) { return s.name === name || s.key === name; }) || null;
  }

  function pageInfo(name) {
    var p = index.pages.find(function (q) { return q.name === name; });
    return p ? p.info : null;
  }

  function hasPage(name) { return pages.has(name) && !!index.pages.find(function (p) { return p.name === name; }); }

  function thumbnailSrc(set, stimulus) {
    if (set.thumbnails.unreadable.indexOf(stimulus) >= 0) return null;
    return set.thumbnails.pattern
      .replace("{shard}", String(Math.floor(stimulus / set.thumbnails.shard)))
      .replace("{index}", String(stimulus));
  }

  function stimuli(set, indices) {
    /* The ids, labels and sizes of stimuli of a set, loading only their chunks. */
    var chunks = {};
    indices.forEach(function (i) { chunks[Math.floor(i / set.chunk)] = true; });
    return Promise.all([load("sets/" + set.key + "/labels")].concat(Object.keys(chunks).map(function (c) {
      return load("sets/" + set.key + "/stimuli/" + c);
    }))).then(function (parts) {
      var labels = parts[0];
      var byChunk = {};
      Object.keys(chunks).forEach(function (c, i) { byChunk[c] = parts[i + 1]; });
      return indices.map(function (i) {
        var chunk = byChunk[Math.floor(i / set.chunk)];
        var j = i % set.chunk;
        var values = {};
        labels.columns.forEach(function (col) { values[col] = labels.values[col][chunk.labels[col][j]]; });
        return { index: i, id: chunk.ids[j], labels: values, width: chunk.w[j], height: chunk.h[j], src: thumbnailSrc(set, i) };
      });
    });
  }

  function labelText(labels) {
    return Object.keys(labels).map(function (k) { return k + " " + labels[k]; }).join(", ");
  }

  function runPicker(current, page, extra) {
    /* Three choosers (set, model, parameter set) that open the same page for another run. */
    var run = runEntry(current);
    function go(set, model, pset) {
      var match = index.runs.find(function (r) { return r.set === set && r.model === model && r.pset === pset; }) ||
        index.runs.find(function (r) { return r.set === set && r.model === model; }) ||
        index.runs.find(function (r) { return r.set === set; });
      location.hash = route(page, match.key.split("/"), extra || null);
    }
    function uniq(list) { return list.filter(function (v, i) { return list.indexOf(v) === i; }); }
    var sets = uniq(index.runs.map(function (r) { return r.set; }));
    var models = uniq(index.runs.filter(function (r) { return r.set === run.set; }).map(function (r) { return r.model; }));
    var psets = uniq(index.runs.filter(function (r) { return r.set === run.set && r.model === run.model; }).map(function (r) { return r.pset; }));
    function opts(list) { return list.map(function (v) { return { value: v, text: v }; }); }
    return [
      select("Stimulus set", opts(sets), run.set, function (v) { go(v, run.model, run.pset); }),
      select("Model", opts(models), run.model, function (v) { go(run.set, v, run.pset); }),
      select("Parameter set", opts(psets), run.pset, function (v) { go(run.set, run.model, v); })
    ];
  }

  /* ------------------------------------------------------------------ heatmaps */

  function heatmapPage(view, r, pageName, title, intro) {
    /* A page of heatmaps handed over by an analysis (actpipe.site.heatmaps contract). */
    var info = pageInfo(pageName) || { maps: [] };
    var maps = info.maps;
    view.appendChild(h("h1", null, title));
    view.appendChild(h("p", { class: "lead" }, intro));
    if (!maps.length) {
      view.appendChild(h("p", { class: "note" }, "No heatmaps."));
      return null;
    }
    var chosen = Math.max(0, maps.findIndex(function (m) { return m.key.split("/").pop() === r.args[0]; }));
    var options = maps.map(function (m, i) {
      var where = [m.set, m.group].filter(Boolean).join(" · ");
      return { value: i, text: (where ? where + ": " : "") + m.title };
    });
    var controls = h("div", { class: "controls" }, select("Heatmap", options, chosen, function (v) {
      location.hash = route(pageName, [maps[Number(v)].key.split("/").pop()]);
    }));
    var plot = h("div", { class: "plot", style: "height:640px", id: "heatmap" });
    var text = h("p", { class: "lead" });
    var source = h("p", { class: "keys" });
    view.appendChild(controls);
    view.appendChild(text);
    view.appendChild(plot);
    view.appendChild(source);
    var m = maps[chosen];
    return Promise.all([load(m.key), plotly()]).then(function (parts) {
      var map = parts[0];
      var Plotly = parts[1];
      text.textContent = map.text;
      source.textContent = "From " + m.file;
      var trace = {
        type: "heatmap",
        z: map.values,
        x: map.x.labels.map(plotText),
        y: map.y.labels.map(plotText),
        colorscale: map.scale === "diverging" ? "RdBu" : "Viridis",
        reversescale: map.scale === "diverging",
        zmid: map.scale === "diverging" ? 0 : undefined,
        zmin: map.zmin, zmax: map.zmax,
        colorbar: { title: { text: plotText(map.unit) } },
        hovertemplate: plotText(map.y.title) + " %{y}<br>" + plotText(map.x.title) + " %{x}<br>value %{z:.4g}<extra></extra>"
      };
      return Plotly.react(plot, [trace], {
        title: { text: plotText(map.title) },
        xaxis: { title: { text: plotText(map.x.title) }, type: "category", automargin: true },
        yaxis: { title: { text: plotText(map.y.title) }, type: "category", automargin: true, autorange: "reversed" },
        margin: { t: 50 }
      }, { displaylogo: false, responsive: true });
    });
  }

  /* ------------------------------------------------------------------ routing */

  function parseRoute() {
    var raw = location.hash.slice(0, 2) === "#/" ? location.hash.slice(2) : "";
    var q = raw.indexOf("?");
    var path = q >= 0 ? raw.slice(0, q) : raw;
    var params = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : "");
    var parts = path.split("/").filter(function (p) { return p.length > 0; });
    return { page: parts[0] || "overview", args: parts.slice(1), params: params };
  }

  var api = {
    load: load, plotly: plotly, h: h, link: link, route: route, table: table, select: select,
    plotText: plotText, fmt: fmt, percent: percent, palette: palette, legend: legend,
    otherColour: OTHER_COLOUR, runEntry: runEntry, setEntry: setEntry, pageInfo: pageInfo,
    hasPage: hasPage, stimuli: stimuli, labelText: labelText, thumbnailSrc: thumbnailSrc,
    runPicker: runPicker, status: status, keys: keys, heatmapPage: heatmapPage,
    get index() { return index; }
  };

  function status(text) {
    document.getElementById("status").textContent = text || "";
  }

  function navigation(current) {
    var nav = document.getElementById("nav");
    var list = h("ul");
    index.pages.forEach(function (p) {
      if (!p.nav || !pages.has(p.name)) return;
      var entry = pages.get(p.name);
      var href = entry.href ? entry.href(api) : route(p.name);
      list.appendChild(h("li", null, h("a", { href: href, "aria-current": p.name === current ? "page" : null }, p.title)));
    });
    nav.replaceChildren(list);
  }

  var renderToken = 0;
  var keyHandlers = {};

  function keys(map) {
    /* Single-key shortcuts of the current page (cleared when another page opens). */
    keyHandlers = map || {};
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    var target = ev.target;
    var tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "select" || tag === "textarea" || (target && target.isContentEditable)) return;
    var handler = keyHandlers[ev.key];
    if (handler) {
      ev.preventDefault();
      handler();
    }
  });

  var rendered = false;

  function render() {
    /* Hashes that are not routes (#main of the skip link) keep the page shown. */
    var isRoute = !location.hash || location.hash === "#" || location.hash.slice(0, 2) === "#/";
    if (!isRoute && rendered) return;
    rendered = true;
    var r = parseRoute();
    var token = ++renderToken;
    var main = document.getElementById("main");
    keyHandlers = {};
    var view = h("div", { class: "page page-" + r.page });
    main.replaceChildren(view);
    navigation(r.page);
    var entry = pages.get(r.page);
    var listed = index.pages.find(function (p) { return p.name === r.page; });
    if (!entry || !listed) {
      view.appendChild(h("h1", { tabindex: "-1" }, "No such page"));
      view.appendChild(h("p", null, "This site has no page “" + r.page + "”. ", link("Go to the overview", "overview")));
      document.title = index.title;
      return;
    }
    document.title = listed.title + " – " + index.title;
    status("Loading…");
    var done = function () {
      if (token !== renderToken) return;
      status("");
      var heading = view.querySelector("h1");
      if (heading && renderCount > 1) {
        heading.setAttribute("tabindex", "-1");
        heading.focus({ preventScroll: true });
      }
      view.dataset.ready = "1";
      document.body.dataset.ready = r.page;
    };
    var fail = function (err) {
      if (token !== renderToken) return;
      status("");
      view.appendChild(h("div", { class: "error", role: "alert" }, "This page could not be drawn: " + (err && err.message ? err.message : String(err))));
      view.dataset.ready = "error";
      document.body.dataset.ready = "error";
      if (window.console) console.error(err);
    };
    renderCount++;
    document.body.dataset.ready = "";
    try {
      Promise.resolve(entry.render(view, r, api, function () { return token === renderToken; })).then(done, fail);
    } catch (err) {
      fail(err);
    }
  }

  function footer() {
    document.getElementById("footer").textContent =
      "actpipe " + index.version + " · " + index.runs.length + " clustering run(s) · plotly.js " +
      index.plotlyVersion + " (vendored) · works offline";
  }

  var started = false;
  function start() {
    if (started) return;
    started = true;
    var ready = function () {
      footer();
      document.getElementById("skip").addEventListener("click", function (ev) {
        ev.preventDefault();
        var target = document.querySelector("#main h1") || document.getElementById("main");
        target.setAttribute("tabindex", "-1");
        target.focus();
      });
      window.addEventListener("hashchange", render);
      render();
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
    else ready();
  }

  window.actpipe = {
    page: function (spec) {
      if (!spec || !spec.name || typeof spec.render !== "function") throw new Error("actpipe.page needs {name, render}");
      pages.set(spec.name, spec);
    },
    api: api
  };
})();
