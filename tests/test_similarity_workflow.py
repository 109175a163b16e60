"""The similarity rules end to end: files, values against independent computations, the
report section, reruns; and the scientific checks on the default config's stimulus sets."""

from __future__ import annotations

import copy
import csv
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import rsatoolbox
import yaml

from actpipe.similarity import RDMFile, read_comparison, render_section
from actpipe.similarity.report import best_theory_layers
from tests.helpers.workflow import REPO, run_snakemake, tiny_config, write_config
from tests.test_similarity_cka import gram_cka

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning"),
]

SIMILARITY = {
    "enabled": True,
    "distances": ["correlation", "crossnobis"],
    "comparisons": ["spearman", "kendall_tau_a", "cka"],
}


def similarity_config() -> dict:
    config = tiny_config()
    config["similarity"] = copy.deepcopy(SIMILARITY)
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("similarity_wf")
    write_config(workdir, similarity_config())
    run_snakemake(workdir, "--cores", "2")
    return workdir


def layer_means(path: Path, model: str, layer: str) -> tuple[list[str], np.ndarray]:
    with h5py.File(path, "r") as f:
        ids = [s.decode() for s in f[f"{model}/stimulus_ids"][()]]
        return ids, f[f"{model}/layers/{layer}"][()].astype(np.float64)


def test_similarity_files_equal_rsatoolbox_on_the_extracted_activations(finished):
    config = similarity_config()
    for stimset in config["stimuli"]:
        for model in config["models"]:
            rdm_path = finished / f"results/similarity/{stimset}/{model}/rdms.h5"
            activations = finished / f"results/activations/{stimset}/{model}.h5"
            with RDMFile(rdm_path) as rdms:
                assert rdms.distances == ["correlation", "crossnobis"]
                for layer in rdms.layers:
                    ids, x = layer_means(activations, model, layer)
                    assert rdms.stimulus_ids == ids
                    n, r, p = x.shape
                    means = rsatoolbox.data.Dataset(
                        x.mean(axis=1), obs_descriptors={"stimulus": np.arange(n)}
                    )
                    ref = rsatoolbox.rdm.calc_rdm(
                        means, method="correlation", descriptor="stimulus"
                    )
                    np.testing.assert_allclose(
                        rdms.stimulus_rdm(layer, "correlation"), ref.get_vectors()[0], atol=1e-10
                    )
                    every = rsatoolbox.data.Dataset(
                        x.reshape(n * r, p),
                        obs_descriptors={
                            "stimulus": np.repeat(np.arange(n), r),
                            "replicate": np.tile(np.arange(r), n),
                        },
                    )
                    ref = rsatoolbox.rdm.calc_rdm(
                        every, method="crossnobis", descriptor="stimulus", cv_descriptor="replicate"
                    )
                    np.testing.assert_allclose(
                        rdms.stimulus_rdm(layer, "crossnobis"), ref.get_vectors()[0], atol=1e-10
                    )


def test_compare_holds_cka_rsa_and_theory_of_every_layer_pair(finished):
    comparison = read_comparison(finished / "results/similarity/gratings/compare.h5")
    t = comparison.layers
    assert t.models == ["resnet18", "vit_tiny"]
    assert t.layer == ["layer1", "layer3", "avgpool", "blocks.0", "blocks.11"]
    assert comparison.cka_estimator == ["exact"] * 5
    means = [
        layer_means(finished / f"results/activations/gratings/{m}.h5", m, lay)[1].mean(axis=1)
        for m, lay in zip(t.model, t.layer, strict=True)
    ]
    for a in range(5):
        for b in range(5):
            assert comparison.cka[a, b] == pytest.approx(gram_cka(means[a], means[b]), abs=1e-9)
    assert set(comparison.theory) == {"orientation", "spatial_frequency"}  # one phase only
    assert comparison.theories["orientation"] == {
        "kind": "circular",
        "period": 180,
        "description": "circular, period 180",
    }
    with open(finished / "results/similarity/gratings/compare.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    measures = {(r["measure"], r["distance"]) for r in rows if r["kind"] == "layers"}
    assert measures == {
        ("cka", ""),
        ("spearman", "correlation"),
        ("kendall_tau_a", "correlation"),
        ("spearman", "crossnobis"),
        ("kendall_tau_a", "crossnobis"),
    }
    assert len([r for r in rows if r["measure"] == "cka"]) == 10


def test_report_has_the_similarity_section_with_the_stored_numbers(finished):
    report = (finished / "results/report.md").read_text()
    assert "## Representational similarity" in report
    section = report[report.index("## Representational similarity") :]
    comparison = read_comparison(finished / "results/similarity/digits/compare.h5")
    for model, (layer, value) in best_theory_layers(comparison, "digit").items():
        assert re.search(
            rf"\| digit \(same 0 / different 1\) \| {model} \| `{layer}` \| "
            rf"{value:.3f} \|",
            section,
        )
    assert "resnet18 ↔ vit_tiny" in section


def test_nothing_to_do_then_a_similarity_edit_reruns_only_similarity_jobs(finished):
    proc = run_snakemake(finished, "-n", "--cores", "1")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    config = similarity_config()
    config["similarity"]["max_stimuli"] = 10
    write_config(finished, config)
    try:
        out = run_snakemake(finished, "-n", "--cores", "1").stdout
    finally:
        write_config(finished, similarity_config())
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1], flags=re.M))
    assert counts == {
        "compute_rdms": "4",
        "compare_layers": "2",
        "write_report": "1",
        "build_site": "1",  # the site's similarity page reads the RDMs and comparisons
        "all": "1",
        "total": "9",
    }


def test_crossnobis_without_replicates_stops_before_any_job(tmp_path):
    config = similarity_config()
    config["extraction"]["n_replicates"] = 1
    write_config(tmp_path, config)
    proc = run_snakemake(tmp_path, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "crossnobis" in proc.stderr + proc.stdout and "n_replicates" in proc.stderr + proc.stdout


def test_unknown_similarity_key_is_a_schema_error(tmp_path):
    config = similarity_config()
    config["similarity"]["distance"] = ["correlation"]
    write_config(tmp_path, config)
    proc = run_snakemake(tmp_path, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0 and "distance" in proc.stderr + proc.stdout


# --------------------------------------------------------------------------- the default sets


@pytest.fixture(scope="module")
def default_sets(tmp_path_factory):
    """The default config's two stimulus sets and its resnet18 and trained digits CNN."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["models"] = {m: config["models"][m] for m in ("resnet18", "digits_cnn")}
    workdir = tmp_path_factory.mktemp("default_sets")
    write_config(workdir, config)
    targets = [f"results/similarity/{s}/compare.h5" for s in ("gratings", "digits")]
    run_snakemake(workdir, "--cores", "2", *targets)
    return workdir


def test_orientation_theory_correlates_with_an_early_layer(default_sets):
    path = default_sets / "results/similarity/gratings/compare.h5"
    comparison = read_comparison(path)
    t = comparison.layers
    values = comparison.theory["orientation"]["correlation"]["spearman"]
    first = {m: float(values[t.of_model(m)[0]]) for m in t.models}
    print("orientation vs first layers:", first)
    assert max(first.values()) > 0.1
    section = "\n".join(render_section([path]))
    line = next(s for s in section.splitlines() if s.startswith("- **orientation**"))
    stated = [m for m in first if f"{m} {first[m]:.3f}" in line and first[m] > 0]
    assert stated, line  # the report states which first layers correlate positively


def test_digit_theory_matches_late_layers_of_the_trained_cnn_better(default_sets):
    comparison = read_comparison(default_sets / "results/similarity/digits/compare.h5")
    t = comparison.layers
    values = comparison.theory["digit"]["correlation"]["spearman"]
    rows = t.of_model("digits_cnn")
    by_layer = {t.layer[i]: float(values[i]) for i in rows}
    print("digit vs digits_cnn layers:", by_layer)
    assert t.layer[rows[0]] == "features.block1" and t.layer[rows[-1]] == "fc2"
    assert by_layer["fc2"] > by_layer["features.block1"]
    assert by_layer["fc1"] > by_layer["features.block1"]
