"""The results site in a real browser: headless Chromium (Debian's, through Playwright for
Python; nothing is downloaded) over the site of a tiny workflow run whose stimulus folder has
a label ``<script>alert(1)</script>`` and a stimulus named ``<img src=x onerror=alert(2)>``.

Every page must load with no console error, no failed request and no dialog; the Sankey
must hold the clusters of metadata.json; clicking a node must list exactly that cluster's
members (paths.json); clicking an example must highlight its path; keyboard navigation must
reach clusters and examples; the Snakemake report zip must hold the site and open.
Screenshots go to $ACTPIPE_TEST_ARTIFACTS (default tests/artifacts/)/site/.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from actpipe.names import layer_key
from actpipe.site.serve import make_server, url_of
from tests.helpers.browser import CHROMIUM_ARGS, ensure_chromium
from tests.helpers.workflow import REPO, run_snakemake, tiny_config, write_config

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.workflow]

ARTIFACTS = Path(os.environ.get("ACTPIPE_TEST_ARTIFACTS", REPO / "tests" / "artifacts")) / "site"
XSS_LABEL = "<script>alert(1)</script>"
XSS_ID = "<img src=x onerror=alert(2)>"
SET = "odd+set"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium, installed by tests/browser/install.sh when missing."""
    return ensure_chromium()


def write_stimuli(folder: Path) -> list[str]:
    """12 small images; labels.csv holds a script tag as a label value."""
    folder.mkdir(parents=True)
    ids = []
    for i in range(12):
        sid = {3: XSS_ID, 4: "ünï cödé"}.get(i, f"shape_{i:02d}")
        image = Image.new("RGB", (32, 32), (20 * i, 80, 200 - 10 * i))
        draw = ImageDraw.Draw(image)
        if i % 2:
            draw.ellipse((6, 6, 26, 26), fill=(255, 255, 255))
        else:
            draw.rectangle((8, 8, 24, 24), fill=(0, 0, 0))
        image.save(folder / f"{sid}.png")
        ids.append(sid)
    with open(folder / "labels.csv", "w", encoding="utf-8") as fh:
        fh.write("stimulus_id,kind,tone\n")
        for i, sid in enumerate(ids):
            kind = XSS_LABEL if i % 2 else "square & co"
            fh.write(f"{sid},{kind},{'dark' if i < 6 else 'light'}\n")
    return ids


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A finished tiny workflow run: a stimulus folder with hostile names, and digits."""
    workdir = tmp_path_factory.mktemp("site-wf")
    write_stimuli(workdir / "stimuli_in")
    config = tiny_config()
    config["stimuli"] = {
        SET: {"source": "folder", "path": str(workdir / "stimuli_in")},
        "digits": config["stimuli"]["digits"],
    }
    write_config(workdir, config)
    run_snakemake(workdir, "--cores", "2")
    return workdir


@pytest.fixture(scope="module")
def site(workdir: Path) -> Path:
    return workdir / "results" / "site"


@pytest.fixture(scope="module")
def runs(workdir: Path) -> list[dict]:
    """Every run's metadata, paths and transitions, read from the results files."""
    out = []
    for meta in sorted((workdir / "results" / "clusters").glob("*/*/*/metadata.json")):
        folder = meta.parent
        metadata = json.loads(meta.read_text())
        out.append(
            {
                "key": "/".join(layer_key(p) for p in folder.parts[-3:]),
                "metadata": metadata,
                "paths": json.loads((folder / "paths.json").read_text()),
                "transitions": json.loads((folder / "transitions.json").read_text()),
            }
        )
    return out


@pytest.fixture(scope="module")
def browser(chromium: str):
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class Watch:
    """A tab that records console errors, page errors, failed requests and dialogs."""

    def __init__(self, browser, base: str, name: str) -> None:
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.base = base
        self.name = name
        self.problems: list[str] = []
        self.shots = 0
        page = self.page
        page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on(
            "response",
            lambda r: (
                self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None
            ),
        )
        page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        self.problems.append(f"dialog opened: {dialog.message}")
        dialog.dismiss()

    def open(self, route: str, page: str) -> None:
        self.page.goto(self.base + route)
        self.ready(page)

    def ready(self, page: str) -> None:
        self.page.wait_for_selector(
            f"body[data-ready='{page}'], body[data-ready='error']", state="attached"
        )
        assert self.page.evaluate("() => document.body.dataset.ready") == page, self.text(".error")

    def until(self, script: str, tries: int = 100) -> None:
        """Poll a predicate (page.wait_for_function would need eval, which the CSP forbids)."""
        for _ in range(tries):
            if self.page.evaluate(script):
                return
            self.page.wait_for_timeout(50)
        raise AssertionError(f"never true: {script}")

    def text(self, selector: str) -> str:
        found = self.page.query_selector(selector)
        return found.text_content() if found else ""

    def shot(self, label: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        safe = "".join(ch if ch.isalnum() else "-" for ch in label)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{self.shots:02d}-{safe}.png"))

    def flow(self) -> dict:
        """The drawn Sankey: node and link customdata, values and colours."""
        return self.page.evaluate(
            """() => { const t = document.getElementById('flow').data[0];
                return {nodes: t.node.customdata, links: t.link.customdata,
                        values: t.link.value, colours: t.link.color}; }"""
        )

    def close(self) -> None:
        self.page.close()
        assert not self.problems, self.problems


@pytest.fixture
def tab(browser, site, request):
    watch = Watch(browser, (site / "index.html").resolve().as_uri(), request.node.name)
    yield watch
    watch.close()


def members(run: dict, layer: int, cluster: int) -> list[str]:
    return [e for e, path in run["paths"]["paths"].items() if path[layer] == cluster]


def run_of(runs: list[dict], stimset: str, model: str) -> dict:
    return next(r for r in runs if r["key"].startswith(f"{layer_key(stimset)}/{model}/"))


# ----------------------------------------------------------------------------- pages


def test_every_page_loads_without_errors(browser, site, runs):
    watch = Watch(browser, (site / "index.html").resolve().as_uri(), "pages")
    routes = [("#/", "overview")]
    for run in runs:
        first = run["metadata"]["layers"][0]
        routes += [
            (f"#/paths/{run['key']}", "paths"),
            (f"#/paths/{run['key']}?all=1", "paths"),
            (f"#/cluster/{run['key']}/{layer_key(first)}/0", "cluster"),
            (f"#/example/{run['key']}/0", "example"),
        ]
    routes += [(f"#/metrics/{layer_key(s)}", "metrics") for s in (SET, "digits")]
    for route, page in routes:
        watch.page.goto("about:blank")
        watch.open(route, page)
        watch.shot(route)
    watch.close()


def test_sankey_has_the_clusters_of_metadata_and_the_links_of_transitions(tab, runs):
    for run in runs:
        tab.open(f"#/paths/{run['key']}", "paths")
        flow = tab.flow()
        per_layer = Counter(layer for layer, cluster, *_ in flow["nodes"] if cluster >= 0)
        layers = run["metadata"]["layers"]
        assert [per_layer[j] for j in range(len(layers))] == [
            run["metadata"]["clusters_per_layer"][name] for name in layers
        ]
        assert all(cluster >= 0 for _, cluster, *_ in flow["nodes"])  # nothing pooled
        drawn = sorted(
            [j, a, b, v] for (j, a, b, *_), v in zip(flow["links"], flow["values"], strict=True)
        )
        expected = sorted(
            [j, *link]
            for j, t in enumerate(run["transitions"]["transitions"])
            for link in t["links"]
        )
        assert drawn == expected


def test_top_n_draws_the_commonest_paths_and_pools_the_rest(tab, runs):
    run = run_of(runs, "digits", "resnet18")
    paths = [tuple(p) for p in run["paths"]["paths"].values()]
    counts = Counter(paths)
    top, count = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0]
    tab.open(f"#/paths/{run['key']}?n=1", "paths")
    flow = tab.flow()
    for j, cluster in enumerate(top):
        at_layer = [c for layer, c, *_ in flow["nodes"] if layer == j]
        assert sorted(at_layer) == [-1, cluster]  # the path's cluster and "other"
    pooled = [v for (j, a, *_), v in zip(flow["links"], flow["values"], strict=True) if a < 0]
    assert pooled == [len(paths) - count] * (len(top) - 1)
    tab.page.fill("#top-n", "2")
    tab.page.press("#top-n", "Enter")
    tab.until("() => location.hash.includes('n=2')")
    nodes = tab.flow()["nodes"]
    assert len({tuple(n[:2]) for n in nodes if n[1] >= 0}) >= len(top)
    tab.shot("top-2")


def test_clicking_a_node_lists_exactly_its_members(tab, runs):
    run = run_of(runs, SET, "resnet18")
    layer = 1
    name = run["metadata"]["layers"][layer]
    for cluster in range(run["metadata"]["clusters_per_layer"][name]):
        tab.open(f"#/paths/{run['key']}", "paths")
        box = tab.page.evaluate(
            """([layer, cluster]) => {
                const node = Array.from(document.querySelectorAll('.sankey-node')).find(n => {
                    const d = n.__data__.node.customdata;
                    return d[0] === layer && d[1] === cluster;
                });
                node.scrollIntoView();
                const r = node.querySelector('.node-rect').getBoundingClientRect();
                return [r.x + r.width / 2, r.y + r.height / 2];
            }""",
            [layer, cluster],
        )
        tab.page.mouse.click(*box)
        tab.ready("cluster")
        assert tab.page.evaluate("() => location.hash").endswith(f"/{layer_key(name)}/{cluster}")
        shown = tab.page.eval_on_selector_all(
            "#members li", "items => items.map(li => li.dataset.exampleId)"
        )
        assert sorted(shown) == sorted(members(run, layer, cluster))
        assert len(shown) == len(set(shown))
        tab.shot(f"cluster-{cluster}")


def test_clicking_an_example_highlights_its_path(tab, runs):
    run = run_of(runs, "digits", "vit_tiny")
    name = run["metadata"]["layers"][0]
    tab.open(f"#/cluster/{run['key']}/{layer_key(name)}/1", "cluster")
    example = tab.page.eval_on_selector("#members li", "li => li.dataset.exampleId")
    tab.page.click("#members li a")
    tab.ready("example")
    path = run["paths"]["paths"][example]
    assert tab.text("h1") == f"Example {example}"
    flow = tab.flow()
    on_nodes = sorted((j, c) for j, c, _, on in flow["nodes"] if on)
    assert on_nodes == list(enumerate(path))
    on_links = sorted((j, a, b) for j, a, b, on, _ in flow["links"] if on)
    assert on_links == [(j, path[j], path[j + 1]) for j in range(len(path) - 1)]
    colours = {c for (*_, on, _), c in zip(flow["links"], flow["colours"], strict=True) if on}
    others = {c for (*_, on, _), c in zip(flow["links"], flow["colours"], strict=True) if not on}
    assert len(colours) == 1 and not colours & others
    table = tab.page.eval_on_selector_all(
        "#example-path a[data-cluster]", "as => as.map(a => Number(a.dataset.cluster))"
    )
    assert table == path
    tab.shot("example")


def test_labels_and_names_with_markup_show_as_text(tab, runs, workdir):
    run = run_of(runs, SET, "resnet18")
    tab.open(f"#/paths/{run['key']}?label=kind", "paths")
    legend = tab.page.eval_on_selector_all(".legend li", "lis => lis.map(li => li.textContent)")
    assert XSS_LABEL in legend
    assert tab.page.evaluate(
        "() => Array.from(document.scripts).every(s => !s.textContent.includes('alert('))"
    )
    # Plotly's hover box shows the label as text too
    node = tab.page.evaluate(
        """(label) => {
            const nodes = Array.from(document.querySelectorAll('.sankey-node'));
            const n = nodes.find(n => n.__data__.node.customdata[2].includes('&lt;script&gt;'));
            n.scrollIntoView();
            const r = n.querySelector('.node-rect').getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2];
        }""",
        XSS_LABEL,
    )
    tab.page.mouse.move(*node)
    tab.page.wait_for_selector(".hovertext", state="attached")
    hover = tab.page.eval_on_selector(".hovertext", "g => g.textContent")
    assert XSS_LABEL in hover
    tab.shot("hover")
    index = list(run["paths"]["paths"]).index(XSS_ID)
    tab.open(f"#/example/{run['key']}/{index}", "example")
    assert tab.text("h1") == f"Example {XSS_ID}"
    assert tab.page.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert XSS_LABEL in tab.text("#example-facts")  # stimulus 3 has kind <script>...
    alt = tab.page.eval_on_selector("img.example-image", "img => img.alt")
    assert alt.startswith(XSS_ID)
    tab.shot("hostile-example")


def test_keyboard_reaches_clusters_and_examples(tab, runs):
    run = run_of(runs, "digits", "resnet18")
    tab.open(f"#/paths/{run['key']}", "paths")

    def tab_until(selector: str, limit: int = 200) -> None:
        for _ in range(limit):
            tab.page.keyboard.press("Tab")
            if tab.page.evaluate(f"() => !!document.activeElement.closest({selector!r})"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_until("[data-cluster]")
    target = tab.page.evaluate("() => document.activeElement.getAttribute('href')")
    tab.page.keyboard.press("Enter")
    tab.ready("cluster")
    assert tab.page.evaluate("() => location.hash") == target
    assert tab.page.evaluate("() => document.activeElement.tagName") == "H1"
    tab_until("#members a")
    tab.page.keyboard.press("Enter")
    tab.ready("example")
    here = tab.page.evaluate("() => location.hash")
    index = int(here.rsplit("/", 1)[1])
    tab.page.keyboard.press("n")
    tab.ready("example")
    assert tab.page.evaluate("() => location.hash").endswith(f"/{index + 1}")
    tab.page.keyboard.press("p")
    tab.ready("example")
    assert tab.page.evaluate("() => location.hash") == here
    tab.shot("keyboard")


def test_every_thumbnail_has_alt_text(tab, runs):
    run = run_of(runs, SET, "vit_tiny")
    name = run["metadata"]["layers"][-1]
    for cluster in range(run["metadata"]["clusters_per_layer"][name]):
        tab.open(f"#/cluster/{run['key']}/{layer_key(name)}/{cluster}", "cluster")
        alts = tab.page.eval_on_selector_all("#members img", "imgs => imgs.map(i => i.alt)")
        ids = members(run, len(run["metadata"]["layers"]) - 1, cluster)
        assert len(alts) == len(ids) and all(any(a.startswith(i) for i in ids) for a in alts)
        loaded = tab.page.eval_on_selector_all(
            "#members img", "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)"
        )
        assert loaded


def test_heatmap_pages_draw_when_their_outputs_exist(browser, tmp_path):
    """The generic *.heatmap.json contract (actpipe.site.heatmaps), on the transformer page;
    the similarity page has its own test (tests/test_site_similarity_browser.py)."""
    from actpipe.site import build_site
    from actpipe.site.synthetic import synthetic_results

    root = tmp_path / "results"
    synthetic_results(root, n_stimuli=30, n_models=2, labels=[XSS_LABEL, "b"])
    for folder, rows, cols in (("transformer", 4, 6),):
        (root / folder).mkdir()
        heatmap = {
            "kind": "heatmap",
            "title": f"{folder} <b>map</b>",
            "x": {"title": "x <i>axis</i>", "labels": [f"<x{i}>" for i in range(cols)]},
            "y": {"title": "layer", "labels": [f"layer{i}" for i in range(rows)]},
            "values": [[(i - j) / 4 for j in range(cols)] for i in range(rows)],
            "scale": "diverging",
        }
        (root / folder / "a.heatmap.json").write_text(json.dumps(heatmap))
    site = build_site(root).path
    watch = Watch(browser, (site / "index.html").resolve().as_uri(), "heatmaps")
    for page in ("transformer",):
        watch.open(f"#/{page}", page)
        trace = watch.page.evaluate("() => document.getElementById('heatmap').data[0]")
        assert trace["type"] == "heatmap" and trace["x"][0] == "&lt;x0&gt;"
        ticks = watch.page.eval_on_selector_all(".xtick text", "ts => ts.map(t => t.textContent)")
        assert "<x0>" in ticks  # shown as text
        title = watch.page.eval_on_selector(".gtitle", "t => t.textContent")
        assert title == f"{page} <b>map</b>"
        watch.shot(page)
    nav = watch.page.eval_on_selector_all("#nav a", "as => as.map(a => a.textContent)")
    assert nav[-2:] == ["Metrics vs depth", "Transformer metrics"]
    watch.close()


def test_site_served_on_localhost(browser, workdir):
    server = make_server(workdir / "results", port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        watch = Watch(browser, url_of(server), "served")
        watch.open("#/", "overview")
        watch.open("#/metrics/digits", "metrics")
        watch.shot("served")
        watch.close()
    finally:
        server.shutdown()
        server.server_close()


def test_snakemake_report_zip_holds_the_site_and_opens(browser, workdir, tmp_path):
    run_snakemake(workdir, "--report", "results/report.zip")
    archive = workdir / "results" / "report.zip"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path)
    site_index = [n for n in names if n.endswith("/index.html") and "/assets/" not in n]
    assert len(site_index) == 1
    prefix = site_index[0][: -len("index.html")]
    for part in ("data/index.js", "assets/site.js", f"thumbnails/{layer_key(SET)}/0/0.webp"):
        assert prefix + part in names
    assert any(n.endswith("report.md") for n in names)
    assert sum(n.endswith("quality.tsv") for n in names) == 4
    report = next(tmp_path.rglob("report.html"))
    watch = Watch(browser, report.resolve().as_uri(), "report")
    watch.page.goto(watch.base)
    watch.page.get_by_text("Site", exact=True).first.click()
    watch.page.locator("tr:has-text('results/site/index.html') a[iconname=eye]").click()
    frame = None
    for _ in range(300):  # the report's viewer may take a while to open the frame under load
        frame = next((f for f in watch.page.frames if f.url.endswith("/index.html")), None)
        if frame:
            break
        watch.page.wait_for_timeout(100)
    assert frame is not None, [f.url for f in watch.page.frames]
    frame.wait_for_selector("body[data-ready='overview']", state="attached")
    assert frame.evaluate("() => document.querySelector('h1').textContent") == "actpipe results"
    watch.shot("report-site")
    watch.close()
    # the unzipped site also opens on its own
    alone = Watch(browser, (tmp_path / site_index[0]).resolve().as_uri(), "report-alone")
    alone.open("#/", "overview")
    alone.close()
    shutil.rmtree(tmp_path, ignore_errors=True)
