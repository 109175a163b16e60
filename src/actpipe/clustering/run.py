"""Clustering one layer with one parameter set, and the per-layer result file.

Layer result file (``results/clusters/{set}/{model}/{parameter_set}/layers/{layer}.h5``)::

    /labels             (n_examples,) int32   cluster of each example; -1: dropped (NaN/inf)
    /example_ids        (n_examples,) str     stimulus id, or "{stimulus_id}#{replicate}"
    /stimulus_ids       (n_examples,) str     the stimulus of each example
    /replicates         (n_examples,) int32   replicate of each example (-1: replicate mean)
    /centroids          (n_clusters, dim)     float64, in the clustered feature space
    /distances          (n_examples,) float64 each example's distance to its cluster's
                                              centroid in that space; NaN: dropped
    /leaders            (n_clusters, dim)     leaders method only: the leader rows
    attrs: kind, format_version, model, layer, parameter_set, params (every parameter used),
           features (preparation), space (that preparation in words), info (what the method
           reported), quality (scores, including nearest_own),
           dropped (example ids left out), feature_dim, activations, gradients,
           activations_x_gradients (stored: read from the gradient file; multiplied: activations
           times gradients), actpipe_version, seconds
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._io import atomic_output
from .._version import __version__
from ..errors import ClusteringError
from ..storage.format import FORMAT_VERSION, decode_attr, encode_attr
from .features import PreparedRows, describe_space
from .methods import ClusterResult, make_method
from .params import ParameterSet, resolve_parameter_set
from .quality import layer_quality
from .source import LayerSource

log = logging.getLogger(__name__)
KIND = "layer-clusters"


def cluster_layer(
    activations: str | os.PathLike[str],
    model: str,
    layer: str,
    params: dict[str, Any] | ParameterSet,
    output: str | os.PathLike[str],
    parameter_set: str = "",
    gradients: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Cluster ``layer`` of ``model`` in ``activations`` with ``params``; write ``output``.

    The workflow's ``cluster_layer`` rule calls this.
    Streaming methods (minibatch_kmeans, leaders) read the layer in blocks and never hold it;
    the others load the prepared matrix. Returns the attributes written (info, quality, ...).
    """
    pset = (
        params if isinstance(params, ParameterSet) else resolve_parameter_set(params, parameter_set)
    )
    where = f"{activations}: model {model!r}, layer {layer!r}, parameter set {pset.name!r}"
    if pset.features.input == "activations_x_gradients" and gradients is None:
        raise ClusteringError(f"{where}: input activations_x_gradients needs a gradient file")
    started = time.perf_counter()
    source = LayerSource(
        activations,
        model,
        layer,
        replicates=pset.features.replicates,
        gradients=gradients if pset.features.input == "activations_x_gradients" else None,
        block_bytes=pset.features.block_bytes,
    )
    with source:
        method = make_method(pset)
        rows = PreparedRows(source, pset.features, where, streaming=method.streaming)
        result: ClusterResult = method.fit(rows)
        fit_seconds = time.perf_counter() - started
        row_distances = np.empty(rows.n)
        quality = layer_quality(
            rows,
            result.labels,
            result.centroids,
            pset.silhouette_sample,
            pset.seed,
            distances=row_distances,
        )
    log.info(
        "%s: %s, %d clusters on %d x %d rows in %.2f s",
        where,
        method.name,
        result.n_clusters,
        rows.n,
        rows.dim,
        fit_seconds,
    )
    labels = np.full(source.n_examples, -1, dtype=np.int32)
    labels[rows.examples] = result.labels
    distances = np.full(source.n_examples, np.nan)
    distances[rows.examples] = row_distances
    example_ids = source.example_ids
    dropped = [example_ids[i] for i in rows.scan.nonfinite]
    attrs = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "model": model,
        "layer": layer,
        "parameter_set": pset.name,
        "params": pset.to_dict(),
        "features": rows.prep.describe(),
        "space": describe_space(rows.prep.describe()),
        "info": {"method": method.name, **result.info},
        "quality": quality,
        "dropped": dropped,
        "n_examples": source.n_examples,
        "feature_dim": source.feature_dim,
        "activations": str(Path(activations)),
        "gradients": None if source.gradients is None else str(source.gradients),
        "activations_x_gradients": source.product,
        "actpipe_version": __version__,
        "seconds": time.perf_counter() - started,
    }
    strings = h5py.string_dtype("utf-8")
    with atomic_output(output) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("labels", data=labels)
        f.create_dataset("example_ids", data=np.asarray(example_ids, dtype=object), dtype=strings)
        stimulus_of = np.asarray(source.stimulus_ids, dtype=object)[source.example_stimulus]
        f.create_dataset("stimulus_ids", data=stimulus_of, dtype=strings)
        f.create_dataset("replicates", data=source.example_replicate.astype(np.int32))
        f.create_dataset("centroids", data=result.centroids.astype(np.float64))
        f.create_dataset("distances", data=distances)
        for name, array in result.arrays.items():
            f.create_dataset(name, data=array)
        for key, value in attrs.items():
            f.attrs[key] = encode_attr(value)
    return attrs


def read_layer_clusters(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A layer result file as a dict: labels, centroids, ids and the decoded attributes."""
    with h5py.File(path, "r") as f:
        if decode_attr(f.attrs.get("kind", "")) != KIND:
            raise ValueError(f"{path}: not a layer clustering file (kind {KIND!r} expected)")
        return {
            "labels": f["labels"][()].astype(np.int64),
            "centroids": f["centroids"][()],
            "example_ids": f["example_ids"].asstr()[()].tolist(),
            "stimulus_ids": f["stimulus_ids"].asstr()[()].tolist(),
            "replicates": f["replicates"][()],
            "distances": f["distances"][()] if "distances" in f else None,
            "attrs": {k: decode_attr(v) for k, v in f.attrs.items()},
        }
