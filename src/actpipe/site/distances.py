"""Each example's distance to its cluster's centroid, in the space the layer was clustered in.

A cluster's montage shows the members nearest to the centroid first. The centroids of a
layer file (``layers/{layer}.h5``) live in the *prepared* feature space: replicate means or
single exposures, optionally activations x gradients, standardised and reduced by PCA/SVD.
:func:`member_distances` rebuilds exactly that space with the clustering's own preparation
(:class:`actpipe.clustering.PreparedRows` with the parameters recorded in the layer file:
the same scan for standardisation, the same seeded PCA/SVD, or the same incremental PCA for
streaming methods), then measures the Euclidean distance of every example to the centroid of
its cluster. It never relies on the raw activations being comparable to the centroids.

Memory: a layer is read block by block when its preparation streams (streaming methods, and
any method without a PCA/SVD step, whose standardisation comes from the streaming scan);
a layer clustered in memory with PCA/SVD is loaded as the clustering job loaded it.

Output, one HDF5 file per (set, model, parameter set)
(``results/clusters/{set}/{model}/{parameter_set}/distances.h5``)::

    /{layer_key}/distance   (n_examples,) float32   distance to own centroid; NaN: dropped
    attrs of the group: layer (the name), space (what the space is), nearest_own (share of
    examples whose nearest centroid is their own: 1.0 for k-means-like methods; leaders
    assign to the first leader within the threshold, so it can be lower)
    file attrs: kind = "member-distances", format_version, model, parameter_set, layers
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._io import atomic_output
from ..names import layer_key

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]
KIND = "member-distances"
FORMAT_VERSION = 1


def _space(features: dict[str, Any]) -> str:
    steps = ["replicate mean" if features.get("replicates") == "mean" else "each replicate"]
    if features.get("input") == "activations_x_gradients":
        steps.append("activations x gradients")
    if features.get("standardize"):
        steps.append("standardised")
    if features.get("reduce", "none") != "none":
        steps.append(f"{features['reduce']} to {features.get('n_components')} dims")
    return ", ".join(steps)


def layer_distances(
    layer_file: PathLike,
    activations: PathLike,
    gradients: PathLike | None = None,
) -> tuple[dict[str, Any], np.ndarray, float]:
    """(layer attributes, distance of every example to its centroid, nearest-own share)."""
    from ..clustering import (
        LayerSource,
        PreparedRows,
        make_method,
        read_layer_clusters,
        resolve_parameter_set,
    )

    layer = read_layer_clusters(layer_file)
    attrs = layer["attrs"]
    pset = resolve_parameter_set(attrs["params"], attrs.get("parameter_set", ""))
    where = f"{layer_file}: model {attrs['model']!r}, layer {attrs['layer']!r}"
    use_gradients = pset.features.input == "activations_x_gradients"
    if use_gradients and gradients is None:
        raise ValueError(f"{where}: clustered activations x gradients; pass the gradient file")
    source = LayerSource(
        activations,
        attrs["model"],
        attrs["layer"],
        replicates=pset.features.replicates,
        gradients=gradients if use_gradients else None,
        block_bytes=pset.features.block_bytes,
    )
    if source.example_ids != layer["example_ids"]:
        raise ValueError(
            f"{where}: the examples of {activations} differ from those clustered (the "
            "activations changed after clustering); rerun the clustering of this layer"
        )
    method_streams = make_method(pset).streaming
    streaming = method_streams or pset.features.reduce == "none"
    rows = PreparedRows(source, pset.features, where, streaming=streaming)
    if not streaming:
        rows.load()
    centroids = np.asarray(layer["centroids"], dtype=np.float64)
    if rows.dim != centroids.shape[1]:
        raise ValueError(
            f"{where}: prepared features have {rows.dim} dims but the centroids "
            f"{centroids.shape[1]}; rerun the clustering of this layer"
        )
    labels = np.asarray(layer["labels"])
    distance = np.full(source.n_examples, np.nan, dtype=np.float64)
    nearest_own = 0
    counted = 0
    c_sq = (centroids**2).sum(axis=1)
    for positions, X in rows.blocks():
        examples = rows.examples[positions]
        own = labels[examples]
        ok = own >= 0
        if not ok.all():
            examples, X, own = examples[ok], X[ok], own[ok]
        if examples.size == 0:
            continue
        distance[examples] = np.sqrt(((X - centroids[own]) ** 2).sum(axis=1))
        nearest = np.argmin(c_sq[None, :] - 2.0 * X @ centroids.T, axis=1)
        nearest_own += int((nearest == own).sum())
        counted += int(examples.size)
    missing = (labels >= 0) & np.isnan(distance)
    if missing.any():
        raise ValueError(
            f"{where}: {int(missing.sum())} clustered example(s) are not finite in "
            f"{activations} any more; rerun the clustering of this layer"
        )
    attrs = {**attrs, "space": _space(attrs.get("features", {}))}
    return attrs, distance.astype(np.float32), nearest_own / counted if counted else float("nan")


def member_distances(
    layer_files: Sequence[PathLike],
    activations: PathLike,
    output: PathLike,
    gradients: PathLike | None = None,
) -> dict[str, Any]:
    """Write the distances of every layer of one (set, model, parameter set) to ``output``.

    ``layer_files`` are the per-layer clustering files in layer order. Returns a summary
    (layer -> nearest-own share).
    """
    if not layer_files:
        raise ValueError(f"{output}: no layer clustering files given")
    summary: dict[str, Any] = {}
    names: list[str] = []
    with atomic_output(output) as tmp, h5py.File(tmp, "w") as f:
        model = parameter_set = ""
        for path in layer_files:
            attrs, distance, nearest_own = layer_distances(path, activations, gradients)
            name = attrs["layer"]
            model, parameter_set = attrs["model"], attrs.get("parameter_set", "")
            group = f.create_group(layer_key(name))
            group.create_dataset("distance", data=distance)
            group.attrs["layer"] = name
            group.attrs["space"] = attrs["space"]
            group.attrs["nearest_own"] = nearest_own
            names.append(name)
            summary[name] = nearest_own
            log.info(
                "%s: distances of %d examples (%s); nearest centroid is their own for %.1f%%",
                name,
                int(np.isfinite(distance).sum()),
                attrs["space"],
                100 * nearest_own,
            )
        f.attrs["kind"] = KIND
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["model"] = model
        f.attrs["parameter_set"] = parameter_set
        f.attrs["layers"] = json.dumps(names)
    return summary


def read_distances(path: PathLike, layers: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The distances of ``layers`` from a distances file; None when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return None
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        if f.attrs.get("kind") != KIND:
            raise ValueError(f"{path}: not a member-distances file (kind {KIND!r} expected)")
        for name in layers:
            key = layer_key(name)
            if key not in f:
                raise ValueError(
                    f"{path}: no distances of layer {name!r}; rerun rule member_distances"
                )
            out[name] = f[key]["distance"][()].astype(np.float64)
    return out
