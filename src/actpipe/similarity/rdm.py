"""Representational dissimilarity matrices (RDMs) of one layer, streamed from its file.

* :func:`stimulus_rdms`: the RDM over stimuli (their replicate-mean patterns, or their
  replicates for cross-validated distances), for selected rows of a layer. The rows are cut
  into tiles; each pair of tiles is compared by matrix products
  (:mod:`actpipe.similarity.distances`) and written straight into the condensed vector, so
  memory holds the condensed RDMs plus two tiles, never the layer.
* :func:`condition_rdms`: for each label column, the RDM over its values (conditions): the
  mean pattern of every condition is accumulated over all stimuli in one streaming pass.
* :func:`rdm_from_patterns`: the same dissimilarities from an in-memory array.

Condensed RDMs follow ``scipy.spatial.distance.squareform``: pairs ``(i, j)`` with ``i < j``,
row by row, float64.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .distances import (
    Tile,
    check_distances,
    n_pairs,
    needs_replicates,
    pattern_shift,
    prepare_tile,
    put_tile,
    tile_pair,
)

log = logging.getLogger("actpipe.similarity")

DEFAULT_BLOCK_BYTES = 256 << 20
"""Memory for the tiles of one layer (two tiles and their products)."""


@dataclass
class RDMs:
    """Condensed RDMs of one layer, one per distance, over the same patterns."""

    values: dict[str, np.ndarray]
    n: int
    feature_dim: int
    undefined: dict[str, int] = field(default_factory=dict)
    """Per distance: patterns whose dissimilarities are undefined (NaN), e.g. constant ones."""
    info: dict[str, Any] = field(default_factory=dict)


def _tile_rows(n: int, feature_dim: int, n_read: int, n_prepared: int, block_bytes: int) -> int:
    """Patterns per tile so that two tiles and a tile-by-tile product fit ``block_bytes``."""
    row_bytes = 8 * feature_dim * (n_read + n_prepared)
    by_rows = block_bytes // max(1, 2 * row_bytes)
    by_square = int(math.sqrt(block_bytes / 32))
    return int(max(16, min(n, by_rows, by_square)))


def _prepared_size(distances: Sequence[str], n_replicates: int) -> int:
    size = 0
    for d in distances:
        if d in ("correlation", "cosine"):
            size += 1
        elif d == "euclidean" or (d == "sqeuclidean" and "euclidean" not in distances):
            size += 1
        elif d == "crossnobis":
            size += n_replicates
    return size


def _tiled_rdms(
    n: int,
    feature_dim: int,
    read: Callable[[int, int], np.ndarray],
    distances: Sequence[str],
    tile_rows: int,
) -> RDMs:
    """RDMs of ``n`` patterns, read as tiles ``read(start, stop)`` (visited once per pair)."""
    out = {d: np.empty(n_pairs(n), dtype=np.float64) for d in distances}
    starts = list(range(0, n, tile_rows))
    bounds = [(a, min(n, a + tile_rows)) for a in starts]
    shift: np.ndarray | None = None
    undefined = {d: 0 for d in distances}
    cache: dict[int, Tile] = {}
    reads = 0

    def tile(index: int) -> Tile:
        nonlocal shift, reads
        if index not in cache:
            patterns = read(*bounds[index])
            reads += 1
            if shift is None:
                shift = pattern_shift(patterns)
            prepared = prepare_tile(patterns, distances, shift)
            for d, constant in prepared.constant.items():
                undefined[d] += int(constant.sum())
            cache[index] = prepared
        return cache[index]

    for i in range(len(bounds)):
        a = tile(i)
        # Columns from the last tile down to i + 1: the last one read is the next row tile.
        for j in [i, *range(len(bounds) - 1, i, -1)]:
            b = a if j == i else tile(j)
            for d in distances:
                block = tile_pair(a, b, d, feature_dim)
                put_tile(out[d], n, bounds[i][0], bounds[j][0], block, j == i)
            if j != i and j != i + 1:
                del cache[j]
        del cache[i]
    return RDMs(out, n, feature_dim, undefined, {"tiles": len(bounds), "tile_reads": reads})


def rdm_from_patterns(
    patterns: np.ndarray,
    distances: str | Sequence[str] = "correlation",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> dict[str, np.ndarray]:
    """Condensed RDMs of in-memory patterns: ``(n, P)`` means or ``(n, R, P)`` replicates.

    ``distances`` is one name or a list (see :mod:`actpipe.similarity.distances`);
    cross-validated distances need the replicate axis. Returns ``{distance: condensed}``.
    """
    distances = [distances] if isinstance(distances, str) else list(distances)
    patterns = np.asarray(patterns, dtype=np.float64)
    if patterns.ndim not in (2, 3):
        raise ValueError(f"patterns must be (n, P) or (n, R, P), got shape {patterns.shape}")
    n_rep = patterns.shape[1] if patterns.ndim == 3 else 1
    check_distances(distances, n_rep, "rdm_from_patterns")
    if not needs_replicates(distances) and patterns.ndim == 3:
        patterns = patterns.mean(axis=1)
    n, dim = patterns.shape[0], patterns.shape[-1]
    rows = _tile_rows(
        n, dim, n_rep if patterns.ndim == 3 else 1, _prepared_size(distances, n_rep), block_bytes
    )
    return _tiled_rdms(n, dim, lambda a, b: patterns[a:b], distances, rows).values


def stimulus_rdms(
    view: Any,
    rows: np.ndarray | None,
    distances: Sequence[str],
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> RDMs:
    """RDMs over the stimuli at ``rows`` (increasing; ``None``: all) of a layer.

    ``view`` is the layer's :class:`~actpipe.storage.reader.LayerView` (all replicates);
    patterns are replicate means, or the replicates themselves for cross-validated
    distances. Rows are read tile by tile in float64.
    """
    distances = list(distances)
    n_total, n_rep, dim = view.n_stimuli, view.n_replicates, view.feature_dim
    check_distances(distances, n_rep, f"layer {view.name!r}")
    rows = np.arange(n_total, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    if len(rows) < 2:
        raise ValueError(f"layer {view.name!r}: an RDM needs at least 2 stimuli, got {len(rows)}")
    replicates = needs_replicates(distances)
    source = view if replicates else view.replicate_mean()
    n_read = n_rep if replicates else 1
    tile_rows = _tile_rows(len(rows), dim, n_read, _prepared_size(distances, n_rep), block_bytes)
    read_bytes = max(1 << 20, block_bytes // 4)

    def read(a: int, b: int) -> np.ndarray:
        return source.read(rows=rows[a:b], dtype=np.float64, block_bytes=read_bytes)

    result = _tiled_rdms(len(rows), dim, read, distances, tile_rows)
    result.info["tile_rows"] = tile_rows
    return result


@dataclass
class ConditionRDMs:
    """RDMs over the values of one label (conditions), from all labelled stimuli."""

    label: str
    values: list[str]
    counts: np.ndarray
    rdms: dict[str, np.ndarray]
    n_unlabelled: int
    undefined: dict[str, int] = field(default_factory=dict)


def condition_means(
    view: Any,
    codes: Mapping[str, np.ndarray],
    n_conditions: Mapping[str, int],
    replicates: bool,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per label: ``(means, counts)``, the mean pattern of each condition over all stimuli.

    ``codes[label][row]`` is the condition of each stimulus (-1: none). Means are
    ``(c, R, P)`` with ``replicates`` (the mean of each replicate separately), else
    ``(c, P)`` over replicate means. One streaming pass over the layer; sums in float64.
    """
    n_rep, dim = view.n_replicates, view.feature_dim
    width = n_rep * dim if replicates else dim
    sums = {label: np.zeros((n_conditions[label], width)) for label in codes}
    counts = {label: np.zeros(n_conditions[label], dtype=np.int64) for label in codes}
    source = view if replicates else view.replicate_mean()
    start = 0
    # Small read blocks: each is converted to float64 and multiplied once.
    step_bytes = max(1 << 20, min(block_bytes // 8, 32 << 20))
    for _, block in source.blocks(dtype=np.float64, block_bytes=step_bytes):
        rows = block.shape[0]
        flat = block.reshape(rows, width)
        stop = start + rows
        for label, code in codes.items():
            part = code[start:stop]
            keep = part >= 0
            if not keep.any():
                continue
            # one-hot (conditions x rows); unlabelled rows are zero columns (no copies)
            onehot = np.zeros((n_conditions[label], rows))
            onehot[part[keep], np.flatnonzero(keep)] = 1.0
            sums[label] += onehot @ flat
            counts[label] += np.bincount(part[keep], minlength=n_conditions[label])
        start = stop
    out = {}
    for label in codes:
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums[label] / counts[label][:, None]
        shape = (len(means), n_rep, dim) if replicates else (len(means), dim)
        out[label] = (means.reshape(shape), counts[label])
    return out


def condition_rdms(
    view: Any,
    conditions: Mapping[str, tuple[list[str], np.ndarray]],
    distances: Sequence[str],
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> dict[str, ConditionRDMs]:
    """For each label ``{label: (values, codes)}``, the RDMs over its conditions.

    Every stimulus with a value counts (no subsample). Conditions without stimuli are an
    error (they cannot happen with codes from :meth:`StimulusLabels.conditions`).
    """
    distances = list(distances)
    replicates = needs_replicates(distances)
    usable = {label: vc for label, vc in conditions.items() if len(vc[0]) >= 2}
    if not usable:
        return {}
    means = condition_means(
        view,
        {label: codes for label, (_, codes) in usable.items()},
        {label: len(values) for label, (values, _) in usable.items()},
        replicates,
        block_bytes,
    )
    out = {}
    for label, (values, codes) in usable.items():
        patterns, counts = means[label]
        if (counts == 0).any():
            empty = [v for v, c in zip(values, counts, strict=True) if c == 0]
            raise ValueError(f"label {label!r}: no stimulus has the value(s) {empty[:5]}")
        rows = _tile_rows(
            len(values),
            view.feature_dim,
            view.n_replicates if replicates else 1,
            _prepared_size(distances, view.n_replicates),
            block_bytes,
        )
        result = _tiled_rdms(
            len(values), view.feature_dim, lambda a, b, p=patterns: p[a:b], distances, rows
        )
        out[label] = ConditionRDMs(
            label, list(values), counts, result.values, int((codes < 0).sum()), result.undefined
        )
    return out
