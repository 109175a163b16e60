"""``actpipe export --layout gatormind``: parameter sets' clusters in the cluster-path
dashboard's layout, checked against the per-layer clustering files read with plain h5py and
read back the way the dashboard's backend reads them."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from actpipe.aggregation import aggregate_clusters
from actpipe.cli import main
from actpipe.clustering import cluster_layer
from actpipe.dashboard_layout import export_dashboard
from actpipe.errors import FormatError
from tests.helpers import dashboard
from tests.helpers.clustering import projected_blobs, write_activations
from tests.helpers.npy_tree import backend_activations, write_backend_tree

LAYERS = ["l1", "l2", "l3"]
PARAMETER_SETS = {
    "kmeans_k3": {"method": "kmeans", "k": 3, "n_init": 2, "nonfinite": "drop"},
    "minibatch_k4": {"method": "minibatch_kmeans", "k": 4, "nonfinite": "drop"},
}


def cluster_folder(
    activations: Path, results: Path, model: str, name: str, params: dict, layers=LAYERS
) -> Path:
    """results/clusters/t/{model}/{name}/ made by the library's clustering and aggregation."""
    folder = results / "clusters" / "t" / model / name
    files = []
    for layer in layers:
        files.append(folder / "layers" / f"{layer}.h5")
        cluster_layer(activations, model, layer, params, files[-1], name)
    # small enough that some layers' centroids are only in centroids.h5
    aggregate_clusters(
        files, folder, activations, None, {"stimulus_set": "t"}, centroids_json_max_values=14
    )
    return folder


def layer_file(folder: Path, layer: str) -> dict:
    """A layer clustering file read with plain h5py."""
    with h5py.File(folder / "layers" / f"{layer}.h5", "r") as f:
        return {
            "labels": f["labels"][()],
            "example_ids": f["example_ids"].asstr()[()].tolist(),
            "centroids": f["centroids"][()],
        }


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Two parameter sets of one model: three blob layers, one NaN row in l2 (dropped)."""
    layers, _ = projected_blobs(dict(zip(LAYERS, (6, 4, 5), strict=True)), n=60, seed=4)
    layers["l2"][5, 1, 2] = np.nan
    root = tmp_path_factory.mktemp("res")
    acts = write_activations(root / "m.h5", "m", layers)
    folders = {
        name: cluster_folder(acts, root / "results", "m", name, params)
        for name, params in PARAMETER_SETS.items()
    }
    return acts, folders


def test_export_matches_the_layer_files(results, tmp_path):
    _, folders = results
    # some centroids are inline in centroids.json, others only in centroids.h5
    entries = json.loads((folders["kmeans_k3"] / "centroids.json").read_text())
    assert "centroids" in entries["l2"] and "hdf5" in entries["l1"]

    out = tmp_path / "cache" / "m"
    code = main(["export", "--layout", "gatormind", *map(str, folders.values()), str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "set_01", "set_02"]
    assert [p.name for p in out.parent.iterdir()] == ["m"]  # no temporary left
    metadata = json.loads((out / "metadata.json").read_text())
    assert list(metadata)[:3] == ["num_examples", "layers", "k"]
    assert metadata["num_examples"] == 60 and metadata["layers"] == LAYERS
    assert metadata["model"] == "m" and metadata["stimulus_set"] == "t"
    counts = {}
    for set_name, (pset, folder) in zip(("set_01", "set_02"), folders.items(), strict=True):
        entry = metadata["sets"][set_name]
        assert entry["source"] == str(folder) and entry["parameter_set"] == pset
        assert entry["method"] == PARAMETER_SETS[pset]["method"]
        assert entry["dropped_examples"] == {"l1": 0, "l2": 1, "l3": 0}
        paths = json.loads((out / set_name / "paths.json").read_text())
        centroids = json.loads((out / set_name / "centroids.json").read_text())
        assert list(centroids) == LAYERS
        for i, layer in enumerate(LAYERS):
            truth = layer_file(folder, layer)
            assert list(paths) == truth["example_ids"]  # stimulus order
            assert [paths[eid][i] for eid in truth["example_ids"]] == truth["labels"].tolist()
            exported = np.array(centroids[layer], dtype=np.float64)
            np.testing.assert_array_equal(exported, truth["centroids"])  # bit for bit
            assert entry["clusters_per_layer"][layer] == len(truth["centroids"])
            counts[set_name, layer] = len(truth["centroids"])
        assert paths["s0005"][1] == -1 and min(paths["s0005"][0], paths["s0005"][2]) >= 0
    assert metadata["k"] == max(counts.values())
    assert len(set(counts.values())) > 1  # k differs: the maximum, and counts per set


def test_the_dashboard_reads_the_export(results, tmp_path):
    _, folders = results
    cache = tmp_path / "activation_cache"
    export_dashboard(list(folders.values()), cache / "m")
    assert dashboard.list_models(cache) == ["m"]
    sets = sorted(dashboard.list_cluster_path_sets(cache, "m"))
    assert sets == ["set_01", "set_02"]
    metadata = dashboard.load_metadata(cache, "m")
    assert metadata["layers"] == LAYERS
    for set_name, folder in zip(sets, folders.values(), strict=True):
        paths = dashboard.load_example_paths(cache, "m", set_name)
        centroids = dashboard.load_centroids(cache, "m", set_name)
        assert len(paths) == metadata["num_examples"]
        for layer in LAYERS:
            truth = layer_file(folder, layer)
            assert len(centroids[layer]) <= metadata["k"]
            for cluster in range(len(centroids[layer])):
                members = dashboard.examples_in_cluster(cache, "m", set_name, layer, cluster)
                expected = [
                    e
                    for e, c in zip(truth["example_ids"], truth["labels"], strict=True)
                    if c == cluster
                ]
                assert members == expected
        # the Sankey the dashboard draws is actpipe's transitions.json
        transitions = json.loads((folder / "transitions.json").read_text())["transitions"]
        links = dashboard.sankey_links(cache, "m", set_name)
        for counted, t in zip(links, transitions, strict=True):
            assert counted == Counter({(a, b): c for a, b, c in t["links"]})


def test_backend_tree_round_trip_with_backend_keys(tmp_path, capsys):
    """.npy folders of the backend -> actpipe import -> clustering -> export into the same
    folder, keyed as the backend keys its examples (example_0000, ...)."""
    cache = tmp_path / "activation_cache"
    root = write_backend_tree(cache / "CelebA", backend_activations(30, seed=5))
    (root / "set_03").mkdir()  # a stale set of the backend's own
    before = {p: p.read_bytes() for p in root.glob("*/*.npy")}
    acts = tmp_path / "CelebA.h5"
    assert main(["import", str(root), str(acts)]) == 0
    folder = cluster_folder(
        acts,
        tmp_path / "results",
        "CelebA",
        "k3",
        {"method": "kmeans", "k": 3, "n_init": 2},
        layers=["conv1", "conv2", "fc1"],
    )
    export = ["export", "--layout", "gatormind", str(folder), str(root)]
    assert main([*export, "--example-key", "example_{id:0>4}"]) == 1
    err = capsys.readouterr().err
    assert "metadata.json" in err and "set_01" in err and "--force" in err
    assert main([*export, "--example-key", "example_{id:0>4}", "--force"]) == 0

    assert sorted(dashboard.list_cluster_path_sets(cache, "CelebA")) == ["set_01"]
    assert {p: p.read_bytes() for p in root.glob("*/*.npy")} == before  # layers untouched
    assert (root / "labels.npy").exists() and no_hidden(root)
    paths = dashboard.load_example_paths(cache, "CelebA", "set_01")
    assert list(paths) == [f"example_{i:04d}" for i in range(30)]
    truth = layer_file(folder, "conv2")
    # the backend's image lookup: int(key.split("_")[1]) is the example's index
    assert [int(k.split("_")[1]) for k in paths] == [int(e) for e in truth["example_ids"]]
    assert [p[1] for p in paths.values()] == truth["labels"].tolist()
    ids = json.loads((root / "example_ids.json").read_text())
    assert ids == {f"example_{i:04d}": str(i) for i in range(30)}
    metadata = dashboard.load_metadata(cache, "CelebA")
    assert metadata["example_key"] == "example_{id:0>4}" and metadata["k"] == 3
    # a second export with the default keys replaces the mapping file too
    assert main([*export, "--force"]) == 0
    assert not (root / "example_ids.json").exists()
    assert list(dashboard.load_example_paths(cache, "CelebA", "set_01"))[:2] == ["0", "1"]


def no_hidden(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_exposures_keys_and_mixing_with_means(results, tmp_path):
    acts, folders = results
    each = cluster_folder(
        acts,
        tmp_path,
        "m",
        "each",
        {"method": "kmeans", "k": 3, "n_init": 2, "replicates": "each", "nonfinite": "drop"},
    )
    out = export_dashboard([each], tmp_path / "a")
    paths = json.loads((out / "set_01" / "paths.json").read_text())
    truth = layer_file(each, "l1")
    assert list(paths) == truth["example_ids"] and list(paths)[:3] == [
        "s0000#0",
        "s0000#1",
        "s0001#0",
    ]
    assert json.loads((out / "metadata.json").read_text())["num_examples"] == 120
    out = export_dashboard([each], tmp_path / "b", example_key="{stimulus}_r{replicate}")
    assert list(json.loads((out / "set_01" / "paths.json").read_text()))[:2] == [
        "s0000_r0",
        "s0000_r1",
    ]
    with pytest.raises(FormatError, match=r"examples differ.*replicates setting"):
        export_dashboard([folders["kmeans_k3"], each], tmp_path / "c")
    assert not (tmp_path / "c").exists()
    with pytest.raises(FormatError, match=r"gives key 's0000' to two examples"):
        export_dashboard([each], tmp_path / "d", example_key="{stimulus}")
    with pytest.raises(FormatError, match=r"\{replicate\} needs examples"):
        export_dashboard([folders["kmeans_k3"]], tmp_path / "d", example_key="{replicate}")
    with pytest.raises(FormatError, match=r"unknown: \['name'\]"):
        export_dashboard([folders["kmeans_k3"]], tmp_path / "d", example_key="{name}")
    assert not (tmp_path / "d").exists()


def test_bad_sources(results, tmp_path, capsys):
    acts, folders = results
    model_dir = folders["kmeans_k3"].parent
    with pytest.raises(FormatError, match=r"pass one or more of kmeans_k3, minibatch_k4"):
        export_dashboard([model_dir], tmp_path / "x")
    other = cluster_folder(
        acts, tmp_path, "m", "two", {"method": "kmeans", "k": 2, "n_init": 1}, layers=["l1", "l3"]
    )
    with pytest.raises(FormatError, match=r"layers \['l1', 'l3'\] differ"):
        export_dashboard([folders["kmeans_k3"], other], tmp_path / "x")
    # a centroid file pointed to but missing: nothing is written
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(folders["kmeans_k3"], broken)
    (broken / "centroids.h5").unlink()
    with pytest.raises(FormatError, match=r"centroids of 'l1' point to .*centroids\.h5"):
        export_dashboard([broken], tmp_path / "x")
    assert not (tmp_path / "x").exists() and no_hidden(tmp_path)
    with pytest.raises(FormatError, match=r"is a parameter set's folder of actpipe"):
        export_dashboard([folders["kmeans_k3"]], folders["minibatch_k4"], force=True)
    with pytest.raises(FormatError, match=r"no such folder"):
        export_dashboard([tmp_path / "nowhere"], tmp_path / "x")
    # a file in the way, and the per-stimulus layout's options
    (tmp_path / "file").write_text("")
    assert (
        main(["export", "--layout", "gatormind", str(folders["kmeans_k3"]), str(tmp_path / "file")])
        == 1
    )
    assert "is not a folder" in capsys.readouterr().err
    assert (
        main(["export", "--layout", "per-stimulus", str(acts), str(acts), str(tmp_path / "o.h5")])
        == 1
    )
    assert "exports one activation file" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                "--layout",
                "gatormind",
                str(folders["kmeans_k3"]),
                str(tmp_path / "y"),
                "--model",
                "m",
            ]
        )
        == 1
    )
    assert "--model applies to --layout per-stimulus" in capsys.readouterr().err


def test_a_failed_swap_leaves_the_folder_as_it_was(results, tmp_path, monkeypatch):
    _, folders = results
    out = tmp_path / "m"
    export_dashboard([folders["kmeans_k3"]], out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    import actpipe.dashboard_layout as layout

    real = os.rename

    def failing(src, dst):
        if Path(dst) == out / "metadata.json" and Path(src).parent.name.endswith(".partial"):
            raise OSError("disk full")  # installing the new metadata.json fails
        return real(src, dst)

    monkeypatch.setattr(layout.os, "rename", failing)
    with pytest.raises(OSError, match="disk full"):
        export_dashboard([folders["minibatch_k4"]], out, force=True)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and no_hidden(out)


def test_folders_that_do_not_belong_together_or_are_damaged(results, tmp_path):
    import shutil

    _, folders = results
    source = folders["kmeans_k3"]

    def copy(name: str) -> Path:
        return Path(shutil.copytree(source, tmp_path / name))

    other_model = copy("other_model")
    meta = json.loads((other_model / "metadata.json").read_text())
    (other_model / "metadata.json").write_text(json.dumps({**meta, "model": "resnet18"}))
    with pytest.raises(FormatError, match=r"model 'resnet18', but .* has 'm'"):
        export_dashboard([source, other_model], tmp_path / "x")
    other_set = copy("other_set")
    (other_set / "metadata.json").write_text(json.dumps({**meta, "stimulus_set": "digits"}))
    with pytest.raises(FormatError, match=r"stimulus_set 'digits', but .* has 't'"):
        export_dashboard([source, other_set], tmp_path / "x")
    mixed = copy("mixed")
    paths = json.loads((mixed / "paths.json").read_text())
    (mixed / "paths.json").write_text(json.dumps({**paths, "layers": ["l1", "l2"]}))
    with pytest.raises(FormatError, match=r"layers \['l1', 'l2'\] differ from metadata"):
        export_dashboard([mixed], tmp_path / "x")
    nan = copy("nan")
    with h5py.File(nan / "centroids.h5", "r+") as f:
        f["l1/centroids"][1, 2] = np.nan  # l1's centroids are only in centroids.h5
    with pytest.raises(FormatError, match=r"centroid 1 of layer 'l1' holds NaN or inf"):
        export_dashboard([nan], tmp_path / "x")
    assert not (tmp_path / "x").exists() and no_hidden(tmp_path)
