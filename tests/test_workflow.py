"""The workflow end to end on a tiny config, reruns after config edits, and config errors."""

from __future__ import annotations

import csv
import json
import re

import h5py
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.models import ModelSpec
from actpipe.stimuli import load_stimulus_folder
from tests.helpers.workflow import run_snakemake, tiny_config, write_config

pytestmark = pytest.mark.workflow


def workflow_config() -> dict:
    """The tiny config plus a streaming parameter set over every replicate."""
    config = tiny_config()
    config["clustering"]["parameter_sets"]["minibatch_each"] = {
        "method": "minibatch_kmeans",
        "k": 3,
        "replicates": "each",
        "standardize": True,
        "n_epochs": 2,
    }
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A complete run of the tiny config (shared by the tests of this module)."""
    workdir = tmp_path_factory.mktemp("wf")
    write_config(workdir, workflow_config())
    run_snakemake(workdir, "--cores", "2")
    return workdir


def ids_of(group) -> list[str]:
    return [s.decode() for s in group["stimulus_ids"][()]]


def test_activation_files_have_the_configured_shapes(finished):
    config = workflow_config()
    n_rep = config["extraction"]["n_replicates"]
    for stimset in config["stimuli"]:
        stimuli = load_stimulus_folder(finished / "results" / "stimuli" / stimset)
        for model, block in config["models"].items():
            with h5py.File(finished / f"results/activations/{stimset}/{model}.h5", "r") as f:
                group = f[model]
                assert ids_of(group) == stimuli.ids
                layers = [e if isinstance(e, str) else e["name"] for e in block["layers"]]
                assert json.loads(group.attrs["layer_order"]) == layers
                for layer in layers:
                    data = group["layers"][layer]
                    assert data.shape[:2] == (len(stimuli), n_rep)
                    assert np.isfinite(data[()]).all()
                assert group["jitter"].shape == (len(stimuli), n_rep, 4)
                assert json.loads(group.attrs["weights"])["kind"] == "random"
    with h5py.File(finished / "results/activations/digits/resnet18.h5", "r") as f:
        assert f["resnet18/layers/avgpool"].shape[2] == 512
        assert f["resnet18/layers/layer1"].shape[2] == 64  # mean over positions


def test_workflow_values_equal_a_direct_library_call(finished, tmp_path):
    config = workflow_config()
    block = config["models"]["vit_tiny"]
    stimuli = load_stimulus_folder(finished / "results/stimuli/gratings")
    direct = extract_activations(
        ModelSpec.from_config("vit_tiny", block),
        stimuli,
        tmp_path / "v.h5",
        ExtractionOptions.from_config(config["extraction"]),
    )
    with (
        h5py.File(direct, "r") as a,
        h5py.File(finished / "results/activations/gratings/vit_tiny.h5", "r") as b,
    ):
        for layer in block["layers"]:
            assert (
                a[f"vit_tiny/layers/{layer}"][()].tobytes()
                == b[f"vit_tiny/layers/{layer}"][()].tobytes()
            )


def test_joined_file_links_every_model_without_copies(finished):
    joined = finished / "results/activations/model_activations_digits.h5"
    assert joined.stat().st_size < 10_000  # links only
    with h5py.File(joined, "r") as f:
        assert sorted(f.keys()) == ["resnet18", "vit_tiny"]
        link = f.get("resnet18", getlink=True)
        assert isinstance(link, h5py.ExternalLink) and link.filename == "digits/resnet18.h5"
        with h5py.File(finished / "results/activations/digits/resnet18.h5", "r") as g:
            np.testing.assert_array_equal(
                f["resnet18/layers/layer3"][()], g["resnet18/layers/layer3"][()]
            )


def test_clusters_equal_kmeans_on_replicate_means_and_paths_follow(finished):
    base = finished / "results/clusters/gratings/resnet18/kmeans_k3"
    paths = json.loads((base / "paths.json").read_text())
    metadata = json.loads((base / "metadata.json").read_text())
    centroids = json.loads((base / "centroids.json").read_text())
    transitions = json.loads((base / "transitions.json").read_text())["transitions"]
    with open(base / "quality.tsv") as fh:
        quality = list(csv.DictReader(fh, delimiter="\t"))
    layers = ["layer1", "layer3", "avgpool"]
    assert paths["layers"] == metadata["layers"] == layers
    assert [(t["from_layer"], t["to_layer"]) for t in transitions] == list(
        zip(layers, layers[1:], strict=False)
    )
    assert [row["layer"] for row in quality] == layers
    with open(finished / "results/stimuli/gratings/labels.csv") as fh:
        orientation = [row["orientation"] for row in csv.DictReader(fh)]
    with h5py.File(finished / "results/activations/gratings/resnet18.h5", "r") as f:
        ids = ids_of(f["resnet18"])
        assert list(paths["paths"]) == ids
        assert metadata["n_examples"] == len(ids)
        for i, layer in enumerate(layers):
            X = f[f"resnet18/layers/{layer}"][()].astype(np.float64).mean(axis=1)
            reference = KMeans(n_clusters=3, n_init=2, random_state=0).fit(X)
            with h5py.File(base / "layers" / f"{layer}.h5", "r") as c:
                labels = c["labels"][()]
                np.testing.assert_array_equal(labels, reference.labels_)
                np.testing.assert_allclose(
                    c["centroids"][()], reference.cluster_centers_, rtol=1e-10
                )
            assert [paths["paths"][sid][i] for sid in ids] == labels.tolist()
            assert metadata["clusters_per_layer"][layer] == 3
            assert metadata["feature_dims"][layer] == X.shape[1]
            assert (
                centroids[layer]["k"] == 3 and len(centroids[layer]["centroids"][0]) == X.shape[1]
            )
            assert sum(c for *_, c in (transitions[min(i, 1)]["links"])) == len(ids)
            assert float(quality[i]["ari_orientation"]) == pytest.approx(
                adjusted_rand_score(orientation, labels), abs=1e-6
            )
            assert float(quality[i]["inertia"]) == pytest.approx(reference.inertia_, rel=1e-5)


def test_streaming_parameter_set_clusters_every_replicate(finished):
    base = finished / "results/clusters/digits/vit_tiny/minibatch_each"
    metadata = json.loads((base / "metadata.json").read_text())
    paths = json.loads((base / "paths.json").read_text())["paths"]
    n_rep = workflow_config()["extraction"]["n_replicates"]
    assert metadata["n_examples"] == 20 * n_rep and len(paths) == 20 * n_rep
    assert next(iter(paths)).endswith("#0")
    assert metadata["params"]["replicates"] == "each" and metadata["params"]["standardize"]
    assert metadata["fit_info"]["blocks.0"]["method"] == "minibatch_kmeans"
    assert "ari_digit" in (base / "quality.tsv").read_text().splitlines()[0]


def test_nothing_to_do_after_a_complete_run(finished):
    proc = run_snakemake(finished, "-n", "--cores", "1")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_adding_a_model_schedules_only_its_jobs(finished):
    config = workflow_config()
    config["models"]["resnet18_b"] = {
        **config["models"]["resnet18"],
        "seed": 1,
        "layers": ["layer2", "layer4"],
    }
    write_config(finished, config)
    try:
        out = run_snakemake(finished, "-n", "--cores", "1").stdout
    finally:
        write_config(finished, workflow_config())
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1], flags=re.M))
    assert counts == {
        "extract_activations": "2",
        "cluster_paths": "4",
        "join_activations": "2",
        "write_report": "1",
        "build_site": "1",
        "all": "1",
        "total": "11",
    }
    models = set(re.findall(r"model=([\w.+-]+)", out))
    assert models == {"resnet18_b"}


def test_editing_one_parameter_set_reruns_only_clustering(finished):
    config = workflow_config()
    config["clustering"]["parameter_sets"]["kmeans_k3"]["n_init"] = 3
    write_config(finished, config)
    try:
        out = run_snakemake(finished, "-n", "--cores", "1").stdout
    finally:
        write_config(finished, workflow_config())
    assert "extract_activations" not in out
    assert re.search(r"^cluster_paths\s+4$", out, flags=re.M)  # 2 sets x 2 models


def test_misspelt_key_is_a_schema_error_before_any_job(tmp_path):
    config = workflow_config()
    config["extraction"]["n_replicate"] = 3
    write_config(tmp_path, config)
    proc = run_snakemake(tmp_path, "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "n_replicate" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_wrong_type_is_a_schema_error(tmp_path):
    config = workflow_config()
    config["models"]["resnet18"]["batch_size"] = "many"
    write_config(tmp_path, config)
    proc = run_snakemake(tmp_path, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "batch_size" in proc.stderr + proc.stdout and "many" in proc.stderr + proc.stdout
