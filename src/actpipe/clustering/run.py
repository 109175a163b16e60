"""Clustering one layer of one activation file and storing its labels and centroids."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._io import atomic_output
from ..storage.format import FORMAT_VERSION, encode_attr
from .features import layer_features
from .methods import ClusterResult, make_method

log = logging.getLogger(__name__)


def cluster_layer(
    activations: str | os.PathLike[str],
    model: str,
    layer: str,
    params: dict[str, Any],
    output: str | os.PathLike[str],
    parameter_set: str = "",
) -> ClusterResult:
    """Cluster ``layer`` of ``model`` in ``activations`` with ``params``; write ``output``.

    The output HDF5 holds ``labels`` ``(n,)``, ``centroids`` ``(k, d)``, ``stimulus_ids`` and
    attributes describing the method, its parameters and what the fit reported.
    """
    where = f"{activations}: model {model!r}, layer {layer!r}"
    method = make_method(params)
    replicates = str(params.get("replicates", "mean"))
    ids, X = layer_features(activations, model, layer, replicates)
    started = time.perf_counter()
    result = method.fit(X, where)
    seconds = time.perf_counter() - started
    log.info("%s: %s with k=%d on %d x %d in %.2f s", where, method.name, result.n_clusters,
             *X.shape, seconds)
    with atomic_output(output) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["kind"] = "layer-clusters"
        f.create_dataset("labels", data=result.labels.astype(np.int32))
        f.create_dataset("centroids", data=result.centroids)
        f.create_dataset("stimulus_ids", data=np.asarray(ids, dtype=object),
                         dtype=h5py.string_dtype("utf-8"))
        attrs = {
            "model": model,
            "layer": layer,
            "parameter_set": parameter_set,
            "params": dict(params),
            "info": result.info,
            "replicates": replicates,
            "feature_dim": int(X.shape[1]),
            "activations": str(Path(activations)),
            "fit_seconds": seconds,
        }
        for key, value in attrs.items():
            f.attrs[key] = encode_attr(value)
    return result
