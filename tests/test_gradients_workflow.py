"""The workflow with gradients: the gradient file, spectral clustering of activation x
gradient restricted to one model and set, the report's comparison, reruns and config errors."""

from __future__ import annotations

import copy
import csv
import json
import re

import h5py
import numpy as np
import pytest
from sklearn.cluster import SpectralClustering

from actpipe.extraction import ExtractionOptions
from actpipe.gradients import GradientOptions, compute_gradients
from actpipe.models import ModelSpec
from actpipe.stimuli import load_stimulus_folder
from tests.helpers.browser import CHROMIUM_ARGS, ensure_chromium
from tests.helpers.workflow import run_snakemake, tiny_config, write_config

pytestmark = pytest.mark.workflow

GRADIENTS = {"target": {"label": "digit"}, "stimuli": ["digits"]}
SCOPE = {"models": ["resnet18"], "stimuli": ["digits"]}


def gradients_config() -> dict:
    config = tiny_config()
    config["models"]["resnet18"]["gradients"] = copy.deepcopy(GRADIENTS)
    config["clustering"]["parameter_sets"].update(
        {
            "spectral_acts": {"method": "spectral", "k": 3, **SCOPE},
            "spectral_xgrad": {
                "method": "spectral",
                "k": 3,
                "input": "activations_x_gradients",
                **SCOPE,
            },
        }
    )
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf_gradients")
    write_config(workdir, gradients_config())
    run_snakemake(workdir, "--cores", "2")
    return workdir


def test_gradient_file_equals_a_direct_library_call(finished, tmp_path):
    config = gradients_config()
    assert sorted(
        p.relative_to(finished).as_posix() for p in finished.glob("results/gradients/*/*.h5")
    ) == ["results/gradients/digits/resnet18.h5"]
    stimuli = load_stimulus_folder(finished / "results/stimuli/digits")
    block = {k: v for k, v in config["models"]["resnet18"].items() if k != "gradients"}
    direct = compute_gradients(
        ModelSpec.from_config("resnet18", block),
        stimuli,
        tmp_path / "g.h5",
        ExtractionOptions.from_config(config["extraction"]),
        GradientOptions.from_config({"target": GRADIENTS["target"]}),
        "digits",
    )
    made = finished / "results/gradients/digits/resnet18.h5"
    with h5py.File(made, "r") as f, h5py.File(direct, "r") as g:
        for path in ("layers/layer1", "gradient/avgpool", "target_index", "target_value", "jitter"):
            np.testing.assert_array_equal(f[f"resnet18/{path}"][()], g[f"resnet18/{path}"][()])
        with h5py.File(finished / "results/activations/digits/resnet18.h5", "r") as a:
            assert (
                f["resnet18/stimulus_ids"].asstr()[()].tolist()
                == a["resnet18/stimulus_ids"].asstr()[()].tolist()
            )
            np.testing.assert_array_equal(f["resnet18/jitter"][()], a["resnet18/jitter"][()])


def test_restricted_parameter_sets_make_only_their_folders(finished):
    folders = sorted(
        p.relative_to(finished / "results/clusters").as_posix()
        for p in (finished / "results/clusters").glob("*/*/*")
    )
    assert [f for f in folders if "spectral" in f] == [
        "digits/resnet18/spectral_acts",
        "digits/resnet18/spectral_xgrad",
    ]
    assert "gratings/vit_tiny/kmeans_k3" in folders


def test_activation_x_gradient_is_clustered_from_the_stored_product(finished):
    base = finished / "results/clusters/digits/resnet18/spectral_xgrad"
    gradients = finished / "results/gradients/digits/resnet18.h5"
    with h5py.File(gradients, "r") as f:
        rows = f["resnet18/activation_x_gradient/layer3"][()].astype(np.float64).mean(axis=1)
    gamma = 1.0 / (rows.shape[1] * rows.var())
    expected = SpectralClustering(n_clusters=3, gamma=gamma, random_state=0).fit_predict(rows)
    with h5py.File(base / "layers/layer3.h5", "r") as f:
        np.testing.assert_array_equal(f["labels"][()], expected)
        assert f.attrs["activations_x_gradients"] == "stored"
        assert f.attrs["gradients"] == "results/gradients/digits/resnet18.h5"
    metadata = json.loads((base / "metadata.json").read_text())
    assert metadata["source_files"]["gradients"] == "results/gradients/digits/resnet18.h5"
    checked = [c["path"] for c in metadata["source_files"]["checksums"]]
    assert "results/gradients/digits/resnet18.h5" in checked
    centroids = json.loads((base / "centroids.json").read_text())
    assert "activations x gradients" in centroids["layer3"]["space"]


def quality_ari(folder) -> dict[str, float]:
    with open(folder / "quality.tsv", newline="") as fh:
        return {row["layer"]: float(row["ari_digit"]) for row in csv.DictReader(fh, delimiter="\t")}


def test_report_compares_activation_and_act_x_grad_agreement_per_layer(finished):
    from actpipe.agreement import input_agreement
    from actpipe.report import ClusterRun

    base = finished / "results/clusters/digits/resnet18"
    plain, xgrad = quality_ari(base / "spectral_acts"), quality_ari(base / "spectral_xgrad")
    report = (finished / "results/report.md").read_text()
    section = report[report.index("### Activations vs activations x gradients") :]
    assert "**resnet18** on `digits`, label **digit**" in section
    for layer in ("layer1", "layer3", "avgpool"):
        match = re.search(rf"\| `{layer}` \| ([^\n]*)\|\n", section)
        cells = [c.strip() for c in match.group(1).split("|")]
        # columns: kmeans_k3, spectral_acts, spectral_xgrad, then the twin pair's difference
        assert float(cells[1]) == pytest.approx(plain[layer], abs=5e-4)
        assert float(cells[2]) == pytest.approx(xgrad[layer], abs=5e-4)
        assert float(cells[3]) == pytest.approx(xgrad[layer] - plain[layer], abs=1e-3)
    runs = [ClusterRun.read(base / p) for p in ("kmeans_k3", "spectral_acts", "spectral_xgrad")]
    (table,) = input_agreement(runs)
    pairs = {(p["activations"], p["same_parameters"]) for p in table["pairs"]}
    assert pairs == {("spectral_acts", True)}


def test_editing_the_target_reruns_gradients_and_their_clusterings_only(finished):
    config = gradients_config()
    config["models"]["resnet18"]["gradients"]["target"] = "predicted"
    write_config(finished, config)
    try:
        proc = run_snakemake(finished, "-n", "--cores", "2")
    finally:
        write_config(finished, gradients_config())
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    assert stats.pop("total")
    assert stats == {
        "compute_gradients": "1",
        "cluster_paths": "1",
        "write_report": "1",
        "build_site": "1",
        "all": "1",
    }
    assert run_snakemake(finished, "-n", "--cores", "2").stdout.count("rule ") == 0


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c["models"]["resnet18"].pop("gradients"),
            "spectral_xgrad: input activations_x_gradients needs the gradients of model "
            "'resnet18', which has none",
        ),
        (
            lambda c: c["models"]["resnet18"]["gradients"].update(stimuli=["gratings"]),
            "needs the gradients of model 'resnet18' on digits, outside "
            "models.resnet18.gradients.stimuli",
        ),
        (
            lambda c: c["models"]["resnet18"]["gradients"].update(store=["gradient"]),
            "models.resnet18.gradients.store is ['gradient']; add activation_x_gradient",
        ),
        (
            lambda c: c["clustering"]["parameter_sets"]["spectral_acts"].update(models=["resnet"]),
            "clustering.parameter_sets.spectral_acts.models: no model resnet in the config",
        ),
        (
            lambda c: c["models"].update(
                net={"source": "onnx", "path": "net.onnx", "layers": ["a"], "gradients": True}
            ),
            "models.net.gradients: model 'net' runs in onnxruntime",
        ),
        (
            lambda c: c["models"]["vit_tiny"].update(
                layers=["blocks.0", "blocks.11.resid_mid"], gradients=True
            ),
            "models.vit_tiny.gradients: gradients are taken with respect to module outputs, and "
            "'blocks.11.resid_mid' is a probe",
        ),
    ],
    ids=["no-gradients", "other-sets", "no-product", "unknown-model", "onnx", "probe"],
)
def test_config_errors_stop_the_workflow_before_any_job(tmp_path, edit, message):
    config = gradients_config()
    edit(config)
    write_config(tmp_path, config)
    proc = run_snakemake(tmp_path, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def site_data(site, key: str):
    """The JSON of a site data file (``actpipeData("key", {...});``)."""
    text = (site / "data" / f"{key}.js").read_text()
    prefix = f'actpipeData("{key}",'
    assert text.startswith(prefix)
    return json.loads(text[len(prefix) : text.rindex(")")])


def test_the_site_has_an_agreement_page_and_cluster_paths_of_act_x_grad(finished):
    from actpipe.agreement import input_agreement
    from actpipe.report import ClusterRun

    site = finished / "results/site"
    index = site_data(site, "index")
    page = next(p for p in index["pages"] if p["name"] == "agreement")
    assert page["info"]["entries"] == [
        {"set": "digits", "model": "resnet18", "key": "digits/resnet18", "labels": ["digit"]}
    ]
    base = finished / "results/clusters/digits/resnet18"
    runs = [ClusterRun.read(base / p) for p in ("kmeans_k3", "spectral_acts", "spectral_xgrad")]
    (expected,) = input_agreement(runs)
    data = site_data(site, "agreement/digits/resnet18")
    (table,) = data["tables"]
    assert table["pairs"] == json.loads(json.dumps(expected["pairs"]))
    assert [c["ari"] for c in table["parameter_sets"]] == [
        c["ari"] for c in expected["parameter_sets"]
    ]
    assert table["parameter_sets"][-1]["run"] == "digits/resnet18/spectral_xgrad"
    (section,) = page["info"]["overview"]
    assert section["rows"][0][:4] == [
        "digits",
        "resnet18",
        "digit",
        "spectral_xgrad vs spectral_acts",
    ]
    # the act x grad run is a run like any other: its cluster-paths data and distances
    run = site_data(site, "runs/digits/resnet18/spectral_xgrad/run")
    assert [layer["name"] for layer in run["layers"]] == ["layer1", "layer3", "avgpool"]
    assert run["layers"][1]["space"] == "replicate mean, activations x gradients"
    assert run["layers"][1]["quality"]["ari_digit"] == pytest.approx(
        quality_ari(base / "spectral_xgrad")["layer3"]
    )
    with h5py.File(base / "spectral_xgrad/distances.h5", "r") as f:
        assert "activations x gradients" in f["layer3"].attrs["space"]
        assert f["layer3"].attrs["nearest_own"] > 0.5


@pytest.mark.browser
def test_the_agreement_page_draws_in_chromium(finished):
    """The page opens from disk in headless Chromium with no error, its table holds the
    quality tables' ARI, and its links lead to the act x grad run's cluster paths."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = ensure_chromium()
    base = finished / "results/clusters/digits/resnet18"
    xgrad = quality_ari(base / "spectral_xgrad")
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        url = (finished / "results/site/index.html").as_uri()
        page.goto(url + "#/agreement/digits/resnet18")
        page.wait_for_selector("body[data-ready='agreement'], body[data-ready='error']")
        assert page.evaluate("() => document.body.dataset.ready") == "agreement"
        text = page.inner_text("main")
        assert "Activations vs activation × gradient: resnet18 on digits" in text
        assert f"{xgrad['layer3']:.3f}" in text
        assert page.locator(".js-plotly-plot").count() == 1
        page.click('a:has-text("spectral_xgrad (act × grad)")')
        page.wait_for_selector("body[data-ready='paths'], body[data-ready='error']")
        assert page.evaluate("() => document.body.dataset.ready") == "paths"
        page.goto(url + "#/overview")
        page.wait_for_selector("body[data-ready='overview']")
        assert "Activations vs activations × gradients" in page.inner_text("main")
        browser.close()
    assert problems == []
