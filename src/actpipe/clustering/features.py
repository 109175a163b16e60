"""Reading a layer from an activation file as a feature matrix for clustering."""

from __future__ import annotations

import os

import h5py
import numpy as np

from ..storage.format import LAYERS_GROUP, STIMULUS_IDS
from .methods import ClusteringError

READ_ROWS_BYTES = 64 << 20


def layer_features(
    path: str | os.PathLike[str], model: str, layer: str, replicates: str = "mean"
) -> tuple[list[str], np.ndarray]:
    """``(stimulus_ids, X)`` of one layer, float64.

    ``replicates='mean'`` averages the replicate exposures of each stimulus (one row per
    stimulus). The layer is read in row blocks so the float64 copy is the only large array.
    Non-finite values raise an error naming the layer and the first bad rows.
    """
    if replicates != "mean":
        raise ClusteringError(f"replicates={replicates!r} is not supported here; use 'mean'")
    with h5py.File(path, "r") as f:
        group = f[model]
        ids = [s.decode() if isinstance(s, bytes) else s for s in group[STIMULUS_IDS][()]]
        dset = group[LAYERS_GROUP][layer]
        n, n_rep, d = dset.shape
        X = np.empty((n, d), dtype=np.float64)
        step = max(1, READ_ROWS_BYTES // max(1, n_rep * d * dset.dtype.itemsize))
        for start in range(0, n, step):
            block = dset[start:start + step].astype(np.float64)
            X[start:start + step] = block.mean(axis=1)
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        raise ClusteringError(
            f"{path}: model {model!r}, layer {layer!r}: NaN or inf in {bad.size} row(s), first "
            f"stimuli {[ids[i] for i in bad[:5]]}"
        )
    return ids, X
