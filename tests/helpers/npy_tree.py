"""Activation folders in the per-example NumPy layout, written with plain numpy the way the
ONNX backend of the cluster-path dashboard writes them (no actpipe code involved)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BACKEND_LAYERS = {"conv1": (1, 4, 3, 3), "conv2": (1, 6, 2, 2), "fc1": (1, 5)}
"""Layer -> shape of one example's array: onnxruntime outputs for a batch of one image."""


def backend_activations(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Made-up activations ``{layer: (n, *shape)}`` (float32, as onnxruntime returns)."""
    rng = np.random.default_rng(seed)
    return {
        layer: rng.standard_normal((n, *shape)).astype(np.float32)
        for layer, shape in BACKEND_LAYERS.items()
    }


def write_backend_tree(
    root: Path,
    acts: dict[str, np.ndarray],
    *,
    cluster_outputs: bool = True,
    k: int = 3,
) -> Path:
    """``root/{layer}/{idx}.npy`` for every example index, plus what the backend writes
    beside them: ``labels.npy`` and ``image_ids.npy`` in ``root``, and (after its
    clustering step) ``set_01/centroids.json``, ``set_01/paths.json`` and
    ``metadata.json``."""
    root.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(acts.values())))
    for layer, values in acts.items():
        (root / layer).mkdir(exist_ok=True)
        for idx in range(n):
            np.save(root / layer / f"{idx}.npy", values[idx])
    np.save(root / "labels.npy", np.arange(n) % 2)
    np.save(root / "image_ids.npy", np.arange(n))
    if cluster_outputs:
        layers = sorted(acts)  # the backend's own order: plain sorted folder names
        (root / "set_01").mkdir(exist_ok=True)
        paths = {f"example_{i:04d}": [0] * len(layers) for i in range(n)}
        (root / "set_01" / "paths.json").write_text(json.dumps(paths, indent=2))
        centroids = {layer: [[0.0] * 2] * k for layer in layers}
        (root / "set_01" / "centroids.json").write_text(json.dumps(centroids, indent=2))
        metadata = {"num_examples": n, "layers": layers, "k": k}
        (root / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return root
