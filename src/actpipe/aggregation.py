"""Aggregating per-layer clusterings into cluster paths, centroids and metadata (JSON)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import __version__
from ._io import sha256_file, write_json
from .storage.format import decode_attr


def read_layer_clusters(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One per-layer clustering file as a dict (labels, centroids, ids, attributes)."""
    with h5py.File(path, "r") as f:
        return {
            "labels": f["labels"][()].astype(np.int64),
            "centroids": f["centroids"][()],
            "stimulus_ids": [s.decode() if isinstance(s, bytes) else s
                             for s in f["stimulus_ids"][()]],
            "attrs": {k: decode_attr(v) for k, v in f.attrs.items()},
        }


def aggregate_clusters(
    layer_files: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    activations: str | os.PathLike[str],
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``paths.json``, ``centroids.json`` and ``metadata.json`` into ``out_dir``.

    ``layer_files`` are per-layer clustering files in layer order (the model's layer order
    in the config). Every file must cover the same stimuli in the same order.
    """
    out_dir = Path(out_dir)
    layers = [read_layer_clusters(p) for p in layer_files]
    names = [layer["attrs"]["layer"] for layer in layers]
    ids = layers[0]["stimulus_ids"]
    for layer, path in zip(layers, layer_files, strict=True):
        if layer["stimulus_ids"] != ids:
            raise ValueError(f"{path}: stimulus ids differ from {layer_files[0]}")
    label_matrix = np.stack([layer["labels"] for layer in layers], axis=1)
    paths = {"layers": names,
             "paths": {sid: [int(c) for c in row] for sid, row in zip(ids, label_matrix, strict=True)}}
    centroids = {
        name: {"k": int(layer["centroids"].shape[0]), "dim": int(layer["centroids"].shape[1]),
               "centroids": layer["centroids"].tolist()}
        for name, layer in zip(names, layers, strict=True)
    }
    first = layers[0]["attrs"]
    metadata = {
        **(context or {}),
        "model": first["model"],
        "parameter_set": first.get("parameter_set", ""),
        "params": first["params"],
        "layers": names,
        "n_examples": len(ids),
        "clusters_per_layer": {n: int(layer["centroids"].shape[0])
                               for n, layer in zip(names, layers, strict=True)},
        "feature_dims": {n: int(layer["attrs"]["feature_dim"])
                         for n, layer in zip(names, layers, strict=True)},
        "fit_info": {n: layer["attrs"]["info"] for n, layer in zip(names, layers, strict=True)},
        "source_files": {
            "activations": {"path": str(activations), "sha256": sha256_file(activations)},
            "layer_clusters": [str(p) for p in layer_files],
        },
        "actpipe_version": __version__,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "paths.json", paths, indent=None)
    write_json(out_dir / "centroids.json", centroids, indent=None)
    write_json(out_dir / "metadata.json", metadata)
    return metadata
