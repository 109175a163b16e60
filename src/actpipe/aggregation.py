"""Aggregating the per-layer clusterings of one (stimulus set, model, parameter set).

Writes, into one folder (schemas in docs/clustering.md):

* ``paths.json``: every example's cluster at each layer;
* ``transitions.json``: counts of examples going from cluster a of a layer to cluster b of the
  next (the links of a Sankey diagram);
* ``centroids.json`` and ``centroids.h5``: every layer's centroids (inline in the JSON while a
  layer has at most ``centroids_json_max_values`` numbers, else a pointer into the HDF5 file);
* ``metadata.json``: layers, examples, clusters per layer, method and parameters, feature
  preparation, dropped rows, checksums of the activation files used;
* ``quality.tsv``: one row per layer: inertia, silhouette, Davies-Bouldin, cluster sizes, and
  ARI / NMI / purity against each label column of the stimulus set's ``labels.csv``;
* ``distances.h5``: each example's distance to its cluster's centroid, per layer (the results
  site shows a cluster's members nearest first).

:func:`cluster_paths` (the workflow's rule of that name) clusters every layer of a model with
one parameter set (:func:`actpipe.clustering.cluster_layer`) and writes all of the above.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._io import atomic_output, sha256_file, write_json
from ._version import __version__
from .clustering.features import describe_space
from .clustering.quality import label_scores
from .clustering.run import cluster_layer, read_layer_clusters
from .names import layer_key
from .results import CLUSTER_OUTPUTS, LAYER_CLUSTERS_DIR
from .stimuli.labels import label_columns
from .storage.files import data_files

PathLike = str | os.PathLike[str]
CENTROIDS_JSON_MAX_VALUES = 1_000_000


def transition_counts(labels: np.ndarray, layers: Sequence[str]) -> list[dict[str, Any]]:
    """For each consecutive layer pair, ``[from_cluster, to_cluster, count]`` of the examples
    clustered in both (dropped examples, label -1, are left out)."""
    out = []
    for i in range(len(layers) - 1):
        a, b = labels[:, i], labels[:, i + 1]
        keep = (a >= 0) & (b >= 0)
        pairs, counts = np.unique(np.stack([a[keep], b[keep]], axis=1), axis=0, return_counts=True)
        out.append(
            {
                "from_layer": layers[i],
                "to_layer": layers[i + 1],
                "links": [
                    [int(p[0]), int(p[1]), int(c)] for p, c in zip(pairs, counts, strict=True)
                ],
            }
        )
    return out


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def quality_rows(
    layers: list[dict[str, Any]], names: list[str], labels_by_column: dict[str, list[str]]
) -> list[dict[str, str]]:
    """One row per layer of the quality table (see docs/clustering.md for the columns)."""
    table = []
    for name, layer in zip(names, layers, strict=True):
        attrs = layer["attrs"]
        q = attrs["quality"]
        sizes = q["cluster_sizes"]
        row = {
            "layer": name,
            "method": attrs["params"]["method"],
            "k": _number(attrs["params"].get("k")),
            "n_clusters": str(q["n_clusters"]),
            "n_nonempty": str(q["n_nonempty"]),
            "n_examples": str(attrs["n_examples"]),
            "n_dropped": str(len(attrs["dropped"])),
            "inertia": _number(q["inertia"]),
            "silhouette": _number(q["silhouette"]),
            "silhouette_rows": str(q["silhouette_rows"]),
            "davies_bouldin": _number(q["davies_bouldin"]),
            "size_min": str(min(sizes)),
            "size_median": _number(float(np.median(sizes))),
            "size_max": str(max(sizes)),
            "cluster_sizes": ",".join(map(str, sizes)),
        }
        for column, truth in labels_by_column.items():
            scores = label_scores(layer["labels"], truth)
            for score, value in scores.items():
                row[f"{score}_{column}"] = _number(value)
        table.append(row)
    return table


def write_tsv(path: PathLike, rows: list[dict[str, str]]) -> None:
    """A tab-separated table with a header line, written atomically."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def aggregate_clusters(
    layer_files: Sequence[PathLike],
    out_dir: PathLike,
    activations: PathLike,
    stimuli: PathLike | None = None,
    context: dict[str, Any] | None = None,
    centroids_json_max_values: int = CENTROIDS_JSON_MAX_VALUES,
    checksum_cache: PathLike | None = None,
) -> dict[str, Any]:
    """Write the files of :data:`actpipe.results.CLUSTER_OUTPUTS` into ``out_dir``; return the
    metadata.

    ``checksum_cache``: a folder where the activation files' sha256 are kept between jobs
    (see :func:`actpipe._io.sha256_file`).

    ``layer_files`` are per-layer clustering files in layer order; every one must cover the
    same examples in the same order. ``stimuli`` is the stimulus folder (or its
    ``labels.csv``) whose label columns are scored.
    """
    out_dir = Path(out_dir)
    if not layer_files:
        raise ValueError(f"{out_dir}: no layer clustering files to aggregate")
    layers = [read_layer_clusters(p) for p in layer_files]
    names = [layer["attrs"]["layer"] for layer in layers]
    first = layers[0]
    example_ids = first["example_ids"]
    for layer, path in zip(layers, layer_files, strict=True):
        if layer["example_ids"] != example_ids:
            raise ValueError(
                f"{path}: examples differ from {layer_files[0]} (another replicates setting "
                "or another activation file?); rerun its clustering"
            )
    model = first["attrs"]["model"]
    label_matrix = np.stack([layer["labels"] for layer in layers], axis=1)

    paths = {
        "layers": names,
        "paths": {
            eid: [int(c) for c in row] for eid, row in zip(example_ids, label_matrix, strict=True)
        },
    }
    transitions = {"layers": names, "transitions": transition_counts(label_matrix, names)}

    centroids_json: dict[str, Any] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_dir / CLUSTER_OUTPUTS["centroids_h5"]) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["kind"] = "centroids"
        f.attrs["model"] = model
        for name, layer in zip(names, layers, strict=True):
            c = layer["centroids"]
            group = f.create_group(layer_key(name))
            group.attrs["name"] = name
            group.create_dataset("centroids", data=c)
            entry: dict[str, Any] = {
                "k": int(c.shape[0]),
                "dim": int(c.shape[1]),
                "space": describe_space(layer["attrs"]["features"]),
            }
            if c.size <= centroids_json_max_values:
                entry["centroids"] = c.tolist()
            else:
                entry["hdf5"] = {
                    "file": CLUSTER_OUTPUTS["centroids_h5"],
                    "dataset": f"/{layer_key(name)}/centroids",
                }
            centroids_json[name] = entry

    files = data_files(activations, model)
    gradients = first["attrs"].get("gradients")  # activations x gradients: the gradient file
    if gradients:
        files += [f for f in data_files(gradients, model) if f not in files]
    metadata = {
        **(context or {}),
        "model": model,
        "parameter_set": first["attrs"].get("parameter_set", ""),
        "method": first["attrs"]["params"]["method"],
        "params": first["attrs"]["params"],
        "layers": names,
        "n_examples": len(example_ids),
        "examples": "stimuli"
        if first["attrs"]["params"]["replicates"] == "mean"
        else "exposures ({stimulus_id}#{replicate})",
        "clusters_per_layer": {
            n: int(layer["centroids"].shape[0]) for n, layer in zip(names, layers, strict=True)
        },
        "feature_dims": {
            n: int(layer["attrs"]["feature_dim"]) for n, layer in zip(names, layers, strict=True)
        },
        "features": {n: layer["attrs"]["features"] for n, layer in zip(names, layers, strict=True)},
        "fit_info": {n: layer["attrs"]["info"] for n, layer in zip(names, layers, strict=True)},
        "dropped": {n: layer["attrs"]["dropped"] for n, layer in zip(names, layers, strict=True)},
        "source_files": {
            "activations": str(activations),
            "gradients": gradients,
            "checksums": [
                {"path": str(p), "sha256": sha256_file(p, cache_dir=checksum_cache)} for p in files
            ],
            "layer_clusters": [str(p) for p in layer_files],
        },
        "outputs": list(CLUSTER_OUTPUTS.values()),
        "actpipe_version": __version__,
    }
    stimulus_of = first["stimulus_ids"]
    labels_by_column = label_columns(stimuli, stimulus_of)
    metadata["label_columns"] = list(labels_by_column)

    out = {key: out_dir / name for key, name in CLUSTER_OUTPUTS.items()}
    write_json(out["paths"], paths, indent=None)
    write_json(out["transitions"], transitions, indent=None)
    write_json(out["centroids"], centroids_json, indent=None)
    write_tsv(out["quality"], quality_rows(layers, names, labels_by_column))
    write_member_distances(out["distances"], layers, names, metadata["parameter_set"])
    write_json(out["metadata"], metadata)
    return metadata


# --------------------------------------------------------------------------- distances

DISTANCES_KIND = "member-distances"
DISTANCES_FORMAT_VERSION = 1


def write_member_distances(
    path: PathLike, layers: list[dict[str, Any]], names: list[str], parameter_set: str
) -> None:
    """``distances.h5``: each example's distance to its cluster's centroid, per layer::

        /{layer key}/distance   (n_examples,) float32; NaN: dropped at that layer
            attrs: layer (the name), space (what the space is), nearest_own (share of
            examples whose nearest centroid is their own)
        file attrs: kind = "member-distances", format_version, model, parameter_set, layers

    The distances are measured by the clustering in the space it clustered (the layer
    files' ``/distances``).
    """
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        for name, layer in zip(names, layers, strict=True):
            distances = layer["distances"]
            if distances is None:
                raise ValueError(
                    f"layer {name!r}: its clustering file holds no distances (written by an "
                    "older actpipe); rerun its clustering"
                )
            group = f.create_group(layer_key(name))
            group.create_dataset("distance", data=np.asarray(distances, dtype=np.float32))
            group.attrs["layer"] = name
            group.attrs["space"] = describe_space(layer["attrs"]["features"])
            nearest_own = layer["attrs"]["quality"].get("nearest_own")
            group.attrs["nearest_own"] = np.nan if nearest_own is None else nearest_own
        f.attrs["kind"] = DISTANCES_KIND
        f.attrs["format_version"] = DISTANCES_FORMAT_VERSION
        f.attrs["model"] = layers[0]["attrs"]["model"] if layers else ""
        f.attrs["parameter_set"] = parameter_set
        f.attrs["layers"] = json.dumps(names)


def read_member_distances(path: PathLike, layers: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The distances of ``layers`` from a ``distances.h5``; None when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return None
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        if f.attrs.get("kind") != DISTANCES_KIND:
            raise ValueError(f"{path}: not a member-distances file (kind {DISTANCES_KIND!r})")
        for name in layers:
            key = layer_key(name)
            if key not in f:
                raise ValueError(f"{path}: no distances of layer {name!r}; rerun the clustering")
            out[name] = f[key]["distance"][()].astype(np.float64)
    return out


# --------------------------------------------------------------------------- one run


def cluster_paths(
    activations: PathLike,
    model: str,
    layers: Sequence[str],
    params: dict[str, Any],
    out_dir: PathLike,
    parameter_set: str = "",
    stimuli: PathLike | None = None,
    context: dict[str, Any] | None = None,
    gradients: PathLike | None = None,
    centroids_json_max_values: int = CENTROIDS_JSON_MAX_VALUES,
    checksum_cache: PathLike | None = None,
) -> dict[str, Any]:
    """Cluster every layer of ``model`` with one parameter set and aggregate the cluster
    paths: the workflow's ``cluster_paths`` rule (one job per stimulus set, model and
    parameter set).

    Layers are clustered one after the other (memory: one layer at a time) into
    ``{out_dir}/layers/{layer key}.h5``; then :func:`aggregate_clusters` writes the folder's
    other files. Returns the metadata.
    """
    out_dir = Path(out_dir)
    files = []
    for layer in layers:
        target = out_dir / LAYER_CLUSTERS_DIR / f"{layer_key(layer)}.h5"
        cluster_layer(activations, model, layer, params, target, parameter_set, gradients)
        files.append(target)
    return aggregate_clusters(
        files,
        out_dir,
        activations,
        stimuli,
        context,
        centroids_json_max_values,
        checksum_cache,
    )
