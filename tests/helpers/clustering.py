"""Small activation files in actpipe's format for the clustering tests and benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from actpipe.storage import ActivationWriter


def write_activations(
    path: Path, model: str, layers: dict[str, np.ndarray], ids: list[str] | None = None
) -> Path:
    """Write ``layers`` (each ``(n, n_replicates, dim)``) as one model's activation file."""
    first = next(iter(layers.values()))
    n, n_rep = first.shape[:2]
    ids = ids or [f"s{i:04d}" for i in range(n)]
    writer = ActivationWriter(path, model, n, n_rep)
    for name, values in layers.items():
        writer.add_layer(name, values.shape[2], (values.shape[2],), {})
    writer.write_rows(
        0, np.zeros((n, n_rep, 4)), {k: v.astype(np.float32) for k, v in layers.items()}
    )
    return writer.finish(ids, {})


def blobs(
    n: int = 300, centers: int = 4, dim: int = 8, seed: int = 0, std: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Well separated Gaussian blobs ``(X, true labels)`` (float32-exact values)."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(
        n_samples=n, centers=centers, n_features=dim, random_state=seed, cluster_std=std
    )
    return X.astype(np.float32).astype(np.float64), y


def projected_blobs(
    dims: dict[str, int], n: int = 90, centers: int = 3, seed: int = 2, n_replicates: int = 2
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Layers ``{name: (n, n_replicates, dim)}`` showing the same blobs (6 features) through
    different seeded random projections, and the true blob of each row."""
    X, y = blobs(n=n, centers=centers, dim=6, seed=seed)
    rng = np.random.default_rng(0)
    layers = {
        name: np.stack([X @ rng.normal(size=(6, d))] * n_replicates, axis=1)
        for name, d in dims.items()
    }
    return layers, y
