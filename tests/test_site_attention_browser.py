"""The transformer page in a real browser: headless Chromium (Debian's, through Playwright for
Python; nothing is downloaded) over the site of a tiny workflow run of a ViT on a folder of
JPEG photos in class subfolders (landscape, portrait, a phone photo with EXIF rotation, and a
file named ``<img src=x onerror=alert(3)>.jpg``), storing the class token's attention row of
its last block.

The page must load with no console error, no failed request and no dialog; the metric heatmap
must hold the summary's means; the class token's map must hold the stored attention row of
the chosen example (per head, and the mean over heads), drawn over the picture of the model's
input, which must be that input; the choosers, the keyboard and the example page's link must
lead to the right map. Screenshots go to $ACTPIPE_TEST_ARTIFACTS (default
tests/artifacts/)/site/.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from actpipe.preprocess import Preprocess, prepare_image
from tests.helpers.workflow import run_snakemake, tiny_config, write_config
from tests.test_attention_overlay import pattern, phone_photo
from tests.test_site_browser import (  # noqa: F401  (browser, chromium: fixtures)
    Watch,
    browser,
    chromium,
)
from tests.test_site_similarity_browser import as_array, plot, read_data

pytestmark = [pytest.mark.browser, pytest.mark.workflow]

HOSTILE = "<img src=x onerror=alert(3)>"
SET = "photos"
MODEL = "vit"
PATTERN = "blocks.11.attn.pattern"
EXAMPLES = 5
PRE = {"preset": "imagenet", "size": 48, "resize": 56}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A finished workflow run: a ViT with a stored class-token row over seven photos."""
    workdir = tmp_path_factory.mktemp("attention-site-wf")
    root = workdir / "photos"
    shapes = [(120, 80), (80, 120), (100, 100), (64, 96), (150, 90), (90, 90)]
    names = ["IMG_0001", "IMG_0002", HOSTILE, "IMG_0004", "IMG_0005", "IMG_0006"]
    for k, (name, size) in enumerate(zip(names, shapes, strict=True)):
        folder = root / ("cats" if k % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        pattern(*size, seed=k).save(folder / f"{name}.jpg", "JPEG", quality=92)
    phone_photo(root / "cats" / "IMG_0007.jpg")
    config = tiny_config()
    config["stimuli"] = {SET: {"source": "folder", "path": str(root), "recursive": True}}
    config["models"] = {
        MODEL: {
            "source": "timm",
            "name": "vit_tiny_patch16_224",
            "kwargs": {"img_size": 48},
            "layers": ["blocks.11", {"name": PATTERN, "reduce": "cls_row"}],
            "reduce": "cls",
            "metrics": {"names": ["attention_entropy", "sink_share"], "blocks": [0, 11]},
            "preprocess": PRE,
            "batch_size": 4,
        }
    }
    config["extraction"]["n_replicates"] = 1
    config["clustering"] = {"parameter_sets": {"kmeans_k2": {"method": "kmeans", "k": 2}}}
    config["site"] = {"attention_examples": EXAMPLES}
    write_config(workdir, config)
    run_snakemake(workdir, "--cores", "2")
    return workdir


@pytest.fixture(scope="module")
def site(workdir: Path) -> Path:
    return workdir / "results" / "site"


@pytest.fixture(scope="module")
def stored(workdir: Path) -> dict:
    """The activation file read with h5py: ids and the class token's rows."""
    with h5py.File(workdir / "results" / "activations" / SET / f"{MODEL}.h5", "r") as f:
        group = f[MODEL]
        return {
            "ids": group["stimulus_ids"].asstr()[()].tolist(),
            "rows": group[f"layers/{PATTERN}"][()][:, 0],  # (n, heads, 1 + 9 keys), replicate 0
        }


@pytest.fixture
def tab(browser, site, request):  # noqa: F811
    watch = Watch(
        browser, (site / "index.html").resolve().as_uri(), f"attention-{request.node.name}"
    )
    yield watch
    assert not watch.problems, watch.problems
    watch.close()


def route(site: Path, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"#/transformer/{SET}/{MODEL}" + (f"?{query}" if query else "")


def overlay(tab: Watch) -> dict:
    return plot(tab, "cls-overlay")


def open_overlay(tab: Watch, site: Path) -> dict:
    """Open the page of the model and wait for its first map; return the examples' data."""
    tab.open(route(site), "transformer")
    tab.until("() => !!document.getElementById('cls-overlay').dataset.state")
    return read_data(site, f"transformer/{SET}/{MODEL}/examples")


def expected_map(stored: dict, sid: str, head: int | None) -> np.ndarray:
    row = stored["rows"][stored["ids"].index(sid)]  # (heads, 10)
    patches = row[:, 1:].reshape(-1, 3, 3).astype(np.float64)
    return patches.mean(0) if head is None else patches[head]


def test_the_page_loads_and_draws_the_metrics(tab, workdir, site):
    tab.open(route(site), "transformer")
    summary = json.loads(
        (workdir / "results/transformer" / SET / MODEL / "summary.json").read_text()
    )
    drawn = plot(tab, "metric-heatmap")
    metric = drawn["state"].split("|")[0]
    np.testing.assert_allclose(
        as_array(drawn["trace"]["z"]), summary["metrics"][metric]["mean"], rtol=1e-6
    )
    assert drawn["trace"]["y"] == ["blocks.0", "blocks.11"]
    tab.shot("page")


def test_the_map_is_the_stored_class_token_row_over_the_models_input(tab, site, stored):
    examples = open_overlay(tab, site)
    n = len(stored["ids"])
    assert examples["ids"] == [stored["ids"][k * n // EXAMPLES] for k in range(EXAMPLES)]
    drawn = overlay(tab)
    sid = examples["ids"][0]
    np.testing.assert_allclose(
        as_array(drawn["trace"]["z"]), expected_map(stored, sid, None), rtol=2e-4, atol=1e-6
    )
    # The picture under the map: the model's input, the whole plot area.
    (image,) = drawn["layout"]["images"]
    assert image["source"] == examples["images"][0]
    assert image["sizex"] == 3 and image["sizey"] == 3 and image["layer"] == "below"
    picture = np.asarray(Image.open(site / image["source"]).convert("RGB"), dtype=np.float64) / 255
    photo = site.parent.parent / "photos" / f"{sid}.jpg"  # ids keep the class subfolder
    model_input = prepare_image(photo, Preprocess(size=48, resize=56)).numpy().transpose(1, 2, 0)
    assert picture.shape == (48, 48, 3)
    assert np.abs(picture - model_input).mean() < 0.06
    loaded = tab.page.evaluate(
        "() => [...document.querySelectorAll('#cls-overlay image')]"
        ".map(i => i.getAttribute('href'))"
    )
    assert loaded and loaded[0].endswith(image["source"])
    share = float(stored["rows"][stored["ids"].index(sid)][:, 0].mean())
    assert f"{100 * share:.1f}%" in tab.text("#cls-text")
    tab.page.locator("#cls-heading").scroll_into_view_if_needed()
    tab.shot("overlay")


def test_choosing_head_block_example_and_opacity_redraws_the_right_map(tab, site, stored):
    examples = open_overlay(tab, site)

    def choose(control: str, value: str) -> dict:
        before = overlay(tab)["state"]
        tab.page.select_option(f"select[data-control='{control}']", value)
        tab.until(
            f"() => document.getElementById('cls-overlay').dataset.state !== {json.dumps(before)}"
        )
        return overlay(tab)

    drawn = choose("head", "2")
    sid = examples["ids"][0]
    np.testing.assert_allclose(
        as_array(drawn["trace"]["z"]), expected_map(stored, sid, 2), rtol=2e-4, atol=1e-6
    )
    at = next(i for i, sid in enumerate(examples["ids"]) if sid.endswith(HOSTILE))
    drawn = choose("example", str(at))  # the hostile file name, shown as text
    sid = examples["ids"][at]
    np.testing.assert_allclose(
        as_array(drawn["trace"]["z"]), expected_map(stored, sid, 2), rtol=2e-4, atol=1e-6
    )
    assert HOSTILE in tab.text("#cls-facts") and not tab.page.query_selector("img[src='x']")
    assert f"example={examples['stimuli'][at]}" in tab.page.url and "head=2" in tab.page.url
    tab.page.fill("input[data-control='opacity']", "30")
    tab.page.dispatch_event("input[data-control='opacity']", "input")
    tab.until("() => document.getElementById('cls-overlay').data[0].opacity === 0.3")
    # The URL keeps the choice: reloading shows the same map.
    url = tab.page.url
    tab.page.goto("about:blank")
    tab.page.goto(url)
    tab.ready("transformer")
    tab.until("() => !!document.getElementById('cls-overlay').dataset.state")
    again = overlay(tab)
    assert again["trace"]["opacity"] == 0.3
    np.testing.assert_allclose(
        as_array(again["trace"]["z"]), expected_map(stored, sid, 2), rtol=2e-4, atol=1e-6
    )
    # The table under the map lists the same values.
    cells = tab.page.eval_on_selector_all(
        "#cls-table tbody tr td", "ts => ts.map(t => t.textContent)"
    )
    values = np.array([float(c) for i, c in enumerate(cells) if i % 4], dtype=float).reshape(3, 3)
    np.testing.assert_allclose(values, expected_map(stored, sid, 2), atol=6e-5)
    tab.page.locator("#cls-heading").scroll_into_view_if_needed()
    tab.shot("head-2")


def test_keys_n_and_p_step_through_the_examples(tab, site, stored):
    examples = open_overlay(tab, site)
    first = overlay(tab)["state"]
    tab.page.keyboard.press("n")
    tab.until(f"() => document.getElementById('cls-overlay').dataset.state !== {json.dumps(first)}")
    assert overlay(tab)["state"].split("|")[0] == str(examples["stimuli"][1])
    tab.page.fill("input[data-control='example-search']", "0004")
    tab.page.dispatch_event("input[data-control='example-search']", "input")
    tab.until(
        "() => document.getElementById('cls-overlay').dataset.state.split('|')[0] === "
        f"{json.dumps(str(examples['stimuli'][examples['ids'].index('cats/IMG_0004')]))}"
    )


def test_the_example_page_links_to_its_attention(tab, site, stored):
    examples = read_data(site, f"transformer/{SET}/{MODEL}/examples")
    (run,) = examples["runs"]
    at = run["examples"][3]
    assert at >= 0
    tab.open(f"#/example/{run['key']}/{at}", "example")
    tab.page.click("#attention-link")
    tab.ready("transformer")
    tab.until("() => !!document.getElementById('cls-overlay').dataset.state")
    assert overlay(tab)["state"].split("|")[0] == str(examples["stimuli"][3])
    sid = examples["ids"][3]
    np.testing.assert_allclose(
        as_array(overlay(tab)["trace"]["z"]), expected_map(stored, sid, None), rtol=2e-4, atol=1e-6
    )
