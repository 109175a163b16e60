"""Cluster paths, transitions, centroids, metadata and quality table; joined and sharded
activation files; the ``actpipe cluster`` command."""

from __future__ import annotations

import csv
import hashlib
import json

import h5py
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from actpipe.aggregation import aggregate_clusters
from actpipe.cli import main
from actpipe.clustering import cluster_layer, read_layer_clusters
from actpipe.results import CLUSTER_OUTPUTS
from actpipe.storage import join_activations, merge_shards
from tests.helpers.clustering import blobs, projected_blobs, write_activations

LAYERS = ["l1", "l2", "l3"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """Three layers of the same 3 blobs seen through different random projections."""
    layers, y = projected_blobs(dict(zip(LAYERS, (6, 4, 5), strict=True)))
    folder = tmp_path_factory.mktemp("acts")
    path = write_activations(folder / "m.h5", "m", layers)
    labels = folder / "labels.csv"
    with open(labels, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["stimulus_id", "blob", "parity"])
        for i, c in enumerate(y):
            writer.writerow([f"s{i:04d}", f"b{c}", i % 2])
    return path, y, labels


def cluster_all(path, out, params, model="m"):
    files = []
    for layer in LAYERS:
        target = out / "layers" / f"{layer}.h5"
        cluster_layer(path, model, layer, params, target, "set_01")
        files.append(target)
    return files


def test_paths_transitions_centroids_metadata_and_quality(model_file, tmp_path):
    path, y, labels_csv = model_file
    out = tmp_path / "set_01"
    files = cluster_all(path, out, {"method": "kmeans", "k": 3, "n_init": 2})
    metadata = aggregate_clusters(files, out, path, labels_csv.parent, {"stimulus_set": "t"})
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(CLUSTER_OUTPUTS.values())
    layer_labels = [read_layer_clusters(f)["labels"] for f in files]

    paths = json.loads((out / "paths.json").read_text())
    assert paths["layers"] == LAYERS
    ids = [f"s{i:04d}" for i in range(90)]
    assert list(paths["paths"]) == ids
    for i, layer in enumerate(layer_labels):
        assert [paths["paths"][sid][i] for sid in ids] == layer.tolist()

    transitions = json.loads((out / "transitions.json").read_text())["transitions"]
    assert [(t["from_layer"], t["to_layer"]) for t in transitions] == [("l1", "l2"), ("l2", "l3")]
    for t, (a, b) in zip(transitions, [(0, 1), (1, 2)], strict=True):
        table = np.zeros((3, 3), dtype=int)
        np.add.at(table, (layer_labels[a], layer_labels[b]), 1)
        assert {(i, j): c for i, j, c in t["links"]} == {
            (i, j): table[i, j] for i, j in zip(*np.nonzero(table), strict=True)
        }
        assert sum(c for *_, c in t["links"]) == 90

    centroids = json.loads((out / "centroids.json").read_text())
    with h5py.File(out / "centroids.h5") as f:
        for layer, file in zip(LAYERS, files, strict=True):
            c = read_layer_clusters(file)["centroids"]
            np.testing.assert_array_equal(np.array(centroids[layer]["centroids"]), c)
            np.testing.assert_array_equal(f[f"{layer}/centroids"][()], c)
            assert centroids[layer]["space"] == "replicate mean"

    assert metadata == json.loads((out / "metadata.json").read_text())
    assert metadata["layers"] == LAYERS and metadata["n_examples"] == 90
    assert metadata["clusters_per_layer"] == {"l1": 3, "l2": 3, "l3": 3}
    assert metadata["params"]["method"] == "kmeans" and metadata["params"]["k"] == 3
    assert metadata["stimulus_set"] == "t" and metadata["label_columns"] == ["blob", "parity"]
    (checksum,) = metadata["source_files"]["checksums"]
    assert checksum["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    with open(out / "quality.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["layer"] for r in rows] == LAYERS
    truth = [f"b{c}" for c in y]
    for row, labels in zip(rows, layer_labels, strict=True):
        assert float(row["ari_blob"]) == pytest.approx(adjusted_rand_score(truth, labels), abs=1e-6)
        assert float(row["nmi_blob"]) == pytest.approx(
            normalized_mutual_info_score(truth, labels), abs=1e-6
        )
        assert row["cluster_sizes"] == ",".join(map(str, np.bincount(labels)))
        assert {"inertia", "silhouette", "davies_bouldin", "purity_parity"} <= set(row)


def test_large_centroids_go_to_hdf5_with_a_pointer(model_file, tmp_path):
    path, _, _ = model_file
    out = tmp_path / "set"
    files = cluster_all(path, out, {"method": "leaders", "k": 3})
    aggregate_clusters(files, out, path, None, centroids_json_max_values=12)
    centroids = json.loads((out / "centroids.json").read_text())
    # l1: k x 6 > 12 values -> pointer; the pointer leads to the array
    entry = centroids["l1"]
    assert "centroids" not in entry and entry["hdf5"] == {
        "file": "centroids.h5",
        "dataset": "/l1/centroids",
    }
    with h5py.File(out / entry["hdf5"]["file"]) as f:
        assert f[entry["hdf5"]["dataset"]].shape == (entry["k"], entry["dim"])


def test_dropped_rows_are_minus_one_in_paths_and_left_out_of_transitions(tmp_path):
    X, _ = blobs(n=40, centers=2, dim=3)
    A = np.stack([X, X], axis=1)
    B = A.copy()
    B[3, 0, 0] = np.nan
    path = write_activations(tmp_path / "m.h5", "m", {"l1": A, "l2": B})
    files = []
    for layer in ("l1", "l2"):
        files.append(tmp_path / f"{layer}.h5")
        cluster_layer(
            path, "m", layer, {"method": "kmeans", "k": 2, "nonfinite": "drop"}, files[-1], "p"
        )
    metadata = aggregate_clusters(files, tmp_path / "agg", path)
    paths = json.loads((tmp_path / "agg/paths.json").read_text())["paths"]
    assert paths["s0003"][1] == -1 and paths["s0003"][0] >= 0
    assert metadata["dropped"] == {"l1": [], "l2": ["s0003"]}
    (t,) = json.loads((tmp_path / "agg/transitions.json").read_text())["transitions"]
    assert sum(c for *_, c in t["links"]) == 39


def test_joined_and_sharded_files_give_the_same_clusters(model_file, tmp_path):
    path, _, _ = model_file
    params = {"method": "minibatch_kmeans", "k": 3, "block_mb": 0.001}
    cluster_layer(path, "m", "l2", params, tmp_path / "direct.h5")
    joined = join_activations(tmp_path / "joined.h5", {"m": path})
    cluster_layer(joined, "m", "l2", params, tmp_path / "joined_c.h5")
    with h5py.File(path) as f:
        data = {name: f[f"m/layers/{name}"][()] for name in LAYERS}
    shards = [
        write_activations(
            tmp_path / f"shard{i}.h5",
            "m",
            {n: v[i * 30 : (i + 1) * 30] for n, v in data.items()},
            [f"s{j:04d}" for j in range(i * 30, (i + 1) * 30)],
        )
        for i in range(3)
    ]
    merged = merge_shards(shards, tmp_path / "merged.h5", "m")
    cluster_layer(merged, "m", "l2", params, tmp_path / "merged_c.h5")
    direct = read_layer_clusters(tmp_path / "direct.h5")
    for other in ("joined_c.h5", "merged_c.h5"):
        got = read_layer_clusters(tmp_path / other)
        np.testing.assert_array_equal(got["labels"], direct["labels"])
        np.testing.assert_array_equal(got["centroids"], direct["centroids"])
    files = cluster_all(merged, tmp_path / "agg", {"method": "leaders", "k": 3})
    metadata = aggregate_clusters(files, tmp_path / "agg", merged)
    checked = {c["path"].rsplit("/", 1)[-1] for c in metadata["source_files"]["checksums"]}
    assert checked == {"merged.h5", "shard0.h5", "shard1.h5", "shard2.h5"}


def test_cluster_command(model_file, tmp_path, capsys):
    path, y, labels_csv = model_file
    code = main(
        [
            "cluster",
            str(path),
            "--model",
            "m",
            "--layer",
            "l1",
            "--layer",
            "l3",
            "--clusters",
            "3",
            "--kmeans",
            "--agglomerative",
            "--leaders",
            "--labels",
            str(labels_csv),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    for name in ("kmeans_k3", "agglomerative_k3", "leaders_k3"):
        base = tmp_path / "out" / "m" / name
        assert name in printed
        assert json.loads((base / "paths.json").read_text())["layers"] == ["l1", "l3"]
        assert (base / "layers" / "l3.h5").exists() and (base / "quality.tsv").exists()
    assert "ari_blob=" in printed
    assert (
        main(
            [
                "cluster",
                str(path),
                "--model",
                "m",
                "--layer",
                "nope",
                "-k",
                "3",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 1
    )
    assert "no layer 'nope'" in capsys.readouterr().err
    assert (
        main(
            [
                "cluster",
                str(path),
                "--layer",
                "l1",
                "-k",
                "500",
                "--minibatch-kmeans",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 1
    )
    assert "k=500 clusters asked for but only 90" in capsys.readouterr().err
