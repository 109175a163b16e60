"""A synthetic results tree, for the site's benchmark and tests.

:func:`synthetic_results` writes what :func:`actpipe.site.build_site` reads, in the formats of
the workflow (docs/clustering.md, :mod:`actpipe.site.thumbnails`, the distances of
:func:`actpipe.aggregation.write_member_distances`), without running any model: for one
stimulus set of ``n_stimuli`` images with a ``label`` column of ``n_labels`` classes, every
(model, parameter set) gets cluster paths in which deeper layers follow the label more
closely and each layer partly keeps the previous layer's cluster (so common paths exist, as
in real runs). Thumbnails are a few distinct tiny images, hard-linked to every stimulus (fast
at 100,000).
Everything is seeded: the same arguments give the same files.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..aggregation import DISTANCES_FORMAT_VERSION as DISTANCES_VERSION
from ..aggregation import DISTANCES_KIND
from ..names import layer_key
from ..results import CLUSTER_OUTPUTS
from .thumbnails import MANIFEST, SHARD

PathLike = str | os.PathLike[str]


def _paths(
    rng: np.random.Generator, labels: np.ndarray, n_layers: int, k: int, n_labels: int
) -> np.ndarray:
    n = len(labels)
    out = np.empty((n, n_layers), dtype=np.int64)
    previous = rng.integers(0, k, n)
    for j in range(n_layers):
        follow = (j + 1) / (n_layers + 1)
        by_label = (labels * k) // n_labels
        random = rng.integers(0, k, n)
        keep = rng.random(n) < 0.5
        use_label = rng.random(n) < follow
        layer = np.where(use_label, by_label, random)
        layer = np.where(keep & (j > 0), previous, layer)
        out[:, j] = layer
        previous = layer
    return out


def _thumbnails(folder: Path, ids: list[str], labels: dict[str, list[str]], distinct: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sources = []
    for i in range(min(distinct, len(ids))):
        image = Image.new("RGB", (32, 32), (37 * i % 256, 91 * i % 256, 53 * i % 256))
        buffer = io.BytesIO()
        image.save(buffer, "WEBP", quality=80, method=4)
        path = folder / f"source{i}.webp"
        path.write_bytes(buffer.getvalue())
        sources.append(path)
    for i in range(len(ids)):
        target = folder / f"{i // SHARD}/{i}.webp"
        target.parent.mkdir(exist_ok=True)
        os.link(sources[i % len(sources)], target)
    for path in sources:
        path.unlink()
    manifest = {
        "kind": "thumbnails",
        "format_version": 1,
        "source": "synthetic",
        "size": 32,
        "format": "webp",
        "quality": 80,
        "shard": SHARD,
        "pattern": "{shard}/{index}.webp",
        "ids": ids,
        "width": [32] * len(ids),
        "height": [32] * len(ids),
        "labels": labels,
        "unreadable": [],
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, separators=(",", ":")))


def synthetic_results(
    root: PathLike,
    n_stimuli: int = 1000,
    n_models: int = 3,
    n_layers: int = 4,
    k: int = 8,
    n_parameter_sets: int = 1,
    n_labels: int = 10,
    stimulus_set: str = "synthetic",
    layer_names: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    dropped: int = 0,
    distinct_thumbnails: int = 64,
    seed: int = 0,
) -> list[tuple[str, str, str]]:
    """Write a synthetic results tree under ``root``; return its (set, model, parameter set)
    runs. ``layer_names`` (default ``layer0``...) may hold any characters; ``labels`` gives
    the label value of each class (default ``class0``...); ``dropped`` examples get cluster
    -1 at the last layer (as with ``nonfinite: drop``)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = list(layer_names) if layer_names is not None else [f"layer{j}" for j in range(n_layers)]
    values = list(labels) if labels is not None else [f"class{c}" for c in range(n_labels)]
    n_labels = len(values)
    ids = [f"img_{i:06d}" for i in range(n_stimuli)]
    classes = rng.integers(0, n_labels, n_stimuli)
    label_column = [values[c] for c in classes]
    _thumbnails(
        root / "thumbnails" / stimulus_set, ids, {"label": label_column}, distinct_thumbnails
    )
    runs = []
    for p in range(n_parameter_sets):
        pset = f"kmeans_k{k}" if n_parameter_sets == 1 else f"kmeans_k{k}_{p}"
        for m in range(n_models):
            model = f"model{m:02d}"
            matrix = _paths(rng, classes, len(names), k, n_labels)
            if dropped:
                matrix[rng.choice(n_stimuli, size=dropped, replace=False), -1] = -1
            distances = rng.gamma(4.0, 0.5, matrix.shape).astype(np.float32)
            distances[matrix < 0] = np.nan
            offset = 0.01 * m + 0.003 * p  # runs differ a little in their scores
            _write_run(root, stimulus_set, model, pset, names, ids, matrix, distances, k, offset)
            runs.append((stimulus_set, model, pset))
    return runs


def _write_run(
    root: Path,
    stimset: str,
    model: str,
    pset: str,
    names: list[str],
    ids: list[str],
    matrix: np.ndarray,
    distances: np.ndarray,
    k: int,
    offset: float,
) -> None:
    folder = root / "clusters" / stimset / model / pset
    folder.mkdir(parents=True, exist_ok=True)
    rows = matrix.tolist()
    (folder / "paths.json").write_text(
        json.dumps({"layers": names, "paths": dict(zip(ids, rows, strict=True))})
    )
    transitions = []
    for j in range(len(names) - 1):
        a, b = matrix[:, j], matrix[:, j + 1]
        keep = (a >= 0) & (b >= 0)
        pairs, counts = np.unique(np.stack([a[keep], b[keep]], 1), axis=0, return_counts=True)
        links = [[int(x), int(y), int(c)] for (x, y), c in zip(pairs, counts, strict=True)]
        transitions.append({"from_layer": names[j], "to_layer": names[j + 1], "links": links})
    (folder / "transitions.json").write_text(
        json.dumps({"layers": names, "transitions": transitions})
    )
    params = {"method": "kmeans", "k": k, "seed": 0, "replicates": "mean", "standardize": False}
    features = {"replicates": "mean", "standardize": False, "reduce": "none", "dim": 64}
    metadata: dict[str, Any] = {
        "stimulus_set": stimset,
        "model": model,
        "parameter_set": pset,
        "method": "kmeans",
        "params": params,
        "layers": names,
        "n_examples": len(ids),
        "examples": "stimuli",
        "clusters_per_layer": {name: k for name in names},
        "feature_dims": {name: 64 for name in names},
        "features": {name: features for name in names},
        "label_columns": ["label"],
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=1))
    with open(folder / "quality.tsv", "w", newline="") as fh:
        columns = ["layer", "method", "k", "n_clusters", "n_nonempty", "n_examples"]
        columns += ["silhouette", "davies_bouldin", "ari_label", "nmi_label", "purity_label"]
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for j, name in enumerate(names):
            depth = (j + 1) / (len(names) + 1)
            scores = [0.1 + 0.2 * depth, 1.5, 0.6 * depth, 0.7 * depth, 0.3 + 0.5 * depth]
            writer.writerow(
                [name, "kmeans", k, k, k, len(ids)] + [f"{v + offset:.6g}" for v in scores]
            )
    with h5py.File(folder / CLUSTER_OUTPUTS["distances"], "w") as f:
        f.attrs["kind"] = DISTANCES_KIND
        f.attrs["format_version"] = DISTANCES_VERSION
        f.attrs["model"] = model
        f.attrs["parameter_set"] = pset
        f.attrs["layers"] = json.dumps(names)
        for j, name in enumerate(names):
            group = f.create_group(layer_key(name))
            group.create_dataset("distance", data=distances[:, j])
            group.attrs["layer"] = name
            group.attrs["space"] = "replicate mean"
