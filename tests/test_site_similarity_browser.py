"""The similarity page in a real browser: headless Chromium (Debian's, through Playwright for
Python; nothing is downloaded) over the site of a tiny workflow run with
``similarity.enabled: true``, a stimulus folder whose label has the value
``<script>alert(1)</script>`` and a layer named ``early/1: früh|x``.

The page and the overview must load with no console error, no failed request and no dialog;
the layer x layer matrix must hold the CKA (and RSA) of ``compare.h5``; each model's theory
line must have one point per layer with the values of ``compare.h5``; the RDM heatmap must
hold the RDM of ``rdms.h5`` ordered by the label; the hostile label must show as text; the
choosers must be reachable and usable with the keyboard. Screenshots go to
$ACTPIPE_TEST_ARTIFACTS (default tests/artifacts/)/site/.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.spatial.distance import squareform

from actpipe.names import layer_key
from tests.helpers.workflow import run_snakemake, tiny_config, write_config
from tests.test_site_browser import (  # noqa: F401  (browser, chromium: fixtures)
    SET,
    XSS_LABEL,
    Watch,
    browser,
    chromium,
    write_stimuli,
)

pytestmark = [pytest.mark.browser, pytest.mark.workflow]

AWKWARD = "early/1: früh|x"
SIMILARITY = {
    "enabled": True,
    "distances": ["correlation", "crossnobis"],
    "comparisons": ["spearman", "cka"],
    "max_stimuli": 10,  # the 12 stimuli of SET: RDMs on a subsample, which the page says
}


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A finished tiny workflow run with similarity: hostile stimuli, and gratings."""
    workdir = tmp_path_factory.mktemp("similarity-site-wf")
    write_stimuli(workdir / "stimuli_in")
    config = tiny_config()
    config["stimuli"] = {
        SET: {"source": "folder", "path": str(workdir / "stimuli_in")},
        "gratings": config["stimuli"]["gratings"],
    }
    config["models"]["resnet18"]["layers"][0] = {"name": "layer1", "as": AWKWARD}
    config["similarity"] = SIMILARITY
    write_config(workdir, config)
    run_snakemake(workdir, "--cores", "2")
    return workdir


@pytest.fixture(scope="module")
def site(workdir: Path) -> Path:
    return workdir / "results" / "site"


@pytest.fixture
def tab(browser, site, request):  # noqa: F811
    watch = Watch(
        browser, (site / "index.html").resolve().as_uri(), f"similarity-{request.node.name}"
    )
    yield watch
    watch.close()


def read_data(site: Path, key: str):
    text = (site / "data" / f"{key}.js").read_text(encoding="ascii")
    head = f'actpipeData("{key}",'
    return json.loads(text[len(head) : -3])


def strings(dset) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in dset[()]]


def compared(workdir: Path, stimset: str) -> dict:
    """compare.h5 read with h5py: layer table, CKA, RSA and theory values."""
    with h5py.File(workdir / "results" / "similarity" / stimset / "compare.h5", "r") as f:
        theory = {
            str(g.attrs["label"]): {(d, m): g[f"{d}/{m}"][()] for d in g for m in g[d]}
            for g in f["theory"].values()
        }
        return {
            "model": strings(f["layers/model"]),
            "layer": strings(f["layers/layer"]),
            "depth": f["layers/depth"][()],
            "cka": f["cka/matrix"][()],
            "rsa": f["rsa/correlation/spearman"][()],
            "theory": theory,
        }


def plot(tab: Watch, element: str) -> dict:
    """The first trace and the layout Plotly drew in ``#element``."""
    return tab.page.evaluate(
        """(id) => { const el = document.getElementById(id);
            return {trace: el.data[0], traces: el.data, layout: el.layout,
                    state: el.dataset.state}; }""",
        element,
    )


def as_array(rows) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def choose(tab: Watch, control: str, value: str, element: str) -> None:
    """Pick ``value`` in the chooser ``control`` and wait until ``element`` is redrawn."""
    before = tab.page.evaluate(f"() => document.getElementById('{element}').dataset.state")
    tab.page.select_option(f"select[data-control='{control}']", value)
    tab.until(f"() => document.getElementById('{element}').dataset.state !== {json.dumps(before)}")


# ----------------------------------------------------------------------------- tests


def test_similarity_pages_and_overview_load_without_errors(browser, site):  # noqa: F811
    watch = Watch(browser, (site / "index.html").resolve().as_uri(), "similarity-pages")
    watch.open("#/", "overview")
    titles = watch.page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
    assert "Which layer's RDM matches each label best" in titles
    watch.shot("overview")
    for stimset in (SET, "gratings"):
        key = layer_key(stimset)
        for params in ("", "?rdm=conditions&measure=rsa&x=depth", "?distance=crossnobis"):
            watch.page.goto("about:blank")
            watch.open(f"#/similarity/{key}{params}", "similarity")
            for element in ("rdm-heatmap", "layer-matrix", "theory-plot"):
                assert watch.page.evaluate(f"() => !!document.getElementById('{element}').data")
            watch.shot(f"{stimset}{params}")
    nav = watch.page.eval_on_selector_all("#nav a", "as => as.map(a => a.textContent)")
    assert nav[-1] == "Similarity"
    watch.close()


def test_the_layer_matrix_shows_the_cka_and_rsa_of_compare_h5(tab, workdir):
    stored = compared(workdir, "gratings")
    tab.open(f"#/similarity/{layer_key('gratings')}", "similarity")
    drawn = plot(tab, "layer-matrix")
    np.testing.assert_allclose(as_array(drawn["trace"]["z"]), stored["cka"], rtol=0, atol=1e-15)
    assert drawn["layout"]["xaxis"]["ticktext"] == stored["layer"]
    models = list(dict.fromkeys(stored["model"]))
    assert [a["text"] for a in drawn["layout"]["annotations"]] == models
    assert len(drawn["layout"]["shapes"]) == 2 * (len(models) - 1)  # model boundaries
    assert drawn["trace"]["colorscale"] == "Viridis"
    choose(tab, "measure", "rsa", "layer-matrix")
    drawn = plot(tab, "layer-matrix")
    np.testing.assert_allclose(as_array(drawn["trace"]["z"]), stored["rsa"], rtol=0, atol=1e-15)
    assert drawn["trace"]["zmin"] == -1 and drawn["trace"]["zmax"] == 1  # diverging, centred
    assert "measure=rsa" in tab.page.evaluate("() => location.hash")
    tab.shot("rsa")


def test_each_theory_line_has_one_point_per_layer_with_the_values_of_compare_h5(tab, workdir):
    stored = compared(workdir, "gratings")
    models = list(dict.fromkeys(stored["model"]))
    for label in ("orientation", "spatial_frequency"):
        tab.open(f"#/similarity/{layer_key('gratings')}?label={layer_key(label)}", "similarity")
        values = stored["theory"][label][("correlation", "spearman")]
        traces = plot(tab, "theory-plot")["traces"]
        assert [t["name"] for t in traces] == models
        for trace, model in zip(traces, models, strict=True):
            rows = [i for i, m in enumerate(stored["model"]) if m == model]
            assert trace["x"] == list(range(1, len(rows) + 1))
            np.testing.assert_allclose(trace["y"], values[rows], rtol=0, atol=1e-15)
            assert trace["text"] == [stored["layer"][i] for i in rows]
    choose(tab, "depth-axis", "depth", "theory-plot")
    first = plot(tab, "theory-plot")["traces"][0]
    rows = [i for i, m in enumerate(stored["model"]) if m == models[0]]
    assert first["x"] == stored["depth"][rows].tolist()
    choose(tab, "distance", "crossnobis", "theory-plot")
    values = stored["theory"]["spatial_frequency"][("crossnobis", "spearman")]
    np.testing.assert_allclose(plot(tab, "theory-plot")["traces"][0]["y"], values[rows], atol=1e-15)
    tab.shot("theory")


def test_the_rdm_heatmap_is_the_stored_rdm_ordered_by_the_label(tab, workdir, site):
    stimset, model = SET, "resnet18"
    path = workdir / "results" / "similarity" / stimset / model / "rdms.h5"
    with h5py.File(path, "r") as f:
        ids = strings(f["stimuli/stimulus_ids"])
        kinds = strings(f[f"stimuli/labels/{layer_key('kind')}"])
        full = squareform(f[f"stimulus/correlation/{layer_key(AWKWARD)}"][()])
    assert len(ids) == 10  # max_stimuli: a subsample of the 12
    route = f"#/similarity/{layer_key(stimset)}?label=kind&model={model}&layer={layer_key(AWKWARD)}"
    tab.open(route, "similarity")
    order = sorted(range(len(ids)), key=lambda i: (kinds[i], ids[i]))  # by label, then id
    drawn = plot(tab, "rdm-heatmap")
    np.testing.assert_allclose(
        as_array(drawn["trace"]["z"]), full[np.ix_(order, order)], rtol=6e-5, atol=1e-12
    )
    text = tab.text("#rdm-text")
    assert "computed on a subsample of 10 of its 12 stimuli" in text
    assert "ordered by kind" in text and AWKWARD in text
    layer = tab.page.eval_on_selector("select[data-control='layer']", "s => s.value")
    assert layer == layer_key(AWKWARD)
    options = tab.page.eval_on_selector_all(
        "select[data-control='layer'] option", "os => os.map(o => o.textContent)"
    )
    assert options[0] == AWKWARD
    tab.shot("rdm")


def test_a_label_with_markup_shows_as_text_and_opens_no_dialog(tab, workdir):
    key = layer_key(SET)
    tab.open(f"#/similarity/{key}?label=kind&model=vit_tiny", "similarity")
    drawn = plot(tab, "rdm-heatmap")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in drawn["layout"]["yaxis"]["ticktext"]
    ticks = tab.page.eval_on_selector_all(
        "#rdm-heatmap .ytick text", "ts => ts.map(t => t.textContent)"
    )
    assert XSS_LABEL in ticks
    assert XSS_LABEL in tab.text("#rdm-blocks")  # the table of block means
    box = tab.page.eval_on_selector(
        "#rdm-heatmap .nsewdrag",
        "r => { const b = r.getBoundingClientRect(); "
        "return [b.x + b.width * 0.2, b.y + b.height * 0.8]; }",
    )
    tab.page.mouse.move(*box)
    tab.page.wait_for_selector("#rdm-heatmap .hovertext", state="attached")
    assert XSS_LABEL in tab.page.eval_on_selector("#rdm-heatmap .hovertext", "g => g.textContent")
    tab.shot("hover")
    choose(tab, "rdm-kind", "conditions", "rdm-heatmap")
    ticks = tab.page.eval_on_selector_all(
        "#rdm-heatmap .xtick text", "ts => ts.map(t => t.textContent)"
    )
    assert any(t.startswith(XSS_LABEL) for t in ticks) or XSS_LABEL in ticks
    tab.open("#/", "overview")
    cells = tab.page.eval_on_selector_all("td", "tds => tds.map(t => t.textContent)")
    assert "kind (same 0 / different 1)" in cells  # the similarity section
    assert tab.page.evaluate(
        "() => Array.from(document.scripts).every(s => !s.textContent.includes('alert('))"
    )
    tab.shot("overview-hostile")


def test_overview_links_to_the_best_layer_of_each_label(tab, workdir):
    stored = compared(workdir, "gratings")
    values = stored["theory"]["orientation"][("correlation", "spearman")]
    tab.open("#/", "overview")
    links = tab.page.eval_on_selector_all(
        "a[href^='#/similarity/gratings?label=orientation']",
        "as => as.map(a => [a.textContent, a.getAttribute('href')])",
    )
    models = list(dict.fromkeys(stored["model"]))
    assert len(links) == len(models)
    best = {}
    for model in models:
        rows = [i for i, m in enumerate(stored["model"]) if m == model]
        best[model] = (
            stored["layer"][rows[int(np.nanargmax(values[rows]))]],
            np.nanmax(values[rows]),
        )
    ranked = sorted(models, key=lambda m: -best[m][1])
    assert [text for text, _ in links] == [best[m][0] for m in ranked]
    tab.page.click(f"a[href='{links[0][1]}']")
    tab.ready("similarity")
    chosen = tab.page.eval_on_selector("select[data-control='model']", "s => s.value")
    layer = tab.page.eval_on_selector("select[data-control='layer']", "s => s.value")
    assert (chosen, layer) == (ranked[0], layer_key(best[ranked[0]][0]))


def test_keyboard_reaches_and_uses_the_choosers(tab):
    tab.open(f"#/similarity/{layer_key('gratings')}", "similarity")
    tab.page.focus("#skip")
    wanted = ["set", "label", "distance", "method", "model", "layer", "rdm-kind", "measure"]
    reached = []
    for _ in range(300):
        tab.page.keyboard.press("Tab")
        control = tab.page.evaluate("() => document.activeElement.dataset.control || ''")
        if control and control not in reached:
            reached.append(control)
        if control == "depth-axis":
            break
    assert reached[: len(wanted)] == wanted and reached[-1] == "depth-axis"
    # change the model with the keyboard: the RDM heatmap is redrawn for the other model
    tab.page.focus("select[data-control='model']")
    before = plot(tab, "rdm-heatmap")["state"]
    tab.page.keyboard.press("ArrowDown")
    tab.until(
        f"() => document.getElementById('rdm-heatmap').dataset.state !== {json.dumps(before)}"
    )
    assert plot(tab, "rdm-heatmap")["state"].startswith("vit_tiny|")
    assert tab.page.evaluate("() => document.activeElement.dataset.control") == "model"
    tab.shot("keyboard")
