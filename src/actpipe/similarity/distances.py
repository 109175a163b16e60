"""Dissimilarities between activation patterns, computed tile by tile from Gram products.

A *pattern* is one stimulus's (or one condition's) activation vector of ``P`` features; with
``R`` replicates each pattern also has ``R`` measurements ``x^1 ... x^R`` whose mean is ``x``.
For patterns ``i`` and ``j``:

==============  ===============================================================================
``correlation`` ``1 - r(x_i, x_j)``, r the Pearson correlation across the ``P`` features
                (scipy ``correlation``; rsatoolbox ``correlation``)
``cosine``      ``1 - x_i·x_j / (|x_i| |x_j|)`` (scipy ``cosine``)
``euclidean``   ``|x_i - x_j|`` (scipy ``euclidean``)
``sqeuclidean`` ``|x_i - x_j|² / P``: squared Euclidean distance per feature (rsatoolbox
                ``euclidean``, whose ``dissimilarity_measure`` is "squared euclidean"); the
                biased counterpart of ``crossnobis``
``crossnobis``  ``Σ_{a≠b} (x_i^a - x_j^a)·(x_i^b - x_j^b) / (R (R-1) P)``: the mean over
                ordered pairs of distinct replicates (folds) of the product of the pattern
                differences, per feature (rsatoolbox ``crossnobis`` with identity noise and the
                replicate as ``cv_descriptor``); needs ``R >= 2``; unbiased: its expected
                value is ``|E x_i - E x_j|² / P`` when the replicates' deviations are
                independent, so 0 for identical patterns, and it can be negative
==============  ===============================================================================

Everything is computed from inner products, so a block of rows is compared with another block
by one matrix product (BLAS) and no pair is visited in Python. Euclidean-type distances are
invariant to subtracting one vector from every pattern; a *shift* (the mean pattern of the
first tile) is subtracted before the products, which keeps ``|x|²`` small and the
subtraction ``|x_i|² + |x_j|² - 2 x_i·x_j`` accurate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DISTANCES = ("correlation", "cosine", "euclidean", "sqeuclidean", "crossnobis")
"""Every dissimilarity :mod:`actpipe.similarity` computes."""
CROSS_VALIDATED = frozenset({"crossnobis"})
"""Distances computed across replicates (they need ``n_replicates >= 2``)."""
RSATOOLBOX_NAMES = {
    "correlation": ("correlation", "correlation"),
    "sqeuclidean": ("euclidean", "squared euclidean"),
    "crossnobis": ("crossnobis", "crossnobis"),
}
"""Our distance -> (rsatoolbox ``calc_rdm`` method, rsatoolbox ``dissimilarity_measure``)."""


def check_distances(distances: list[str] | tuple[str, ...], n_replicates: int, where: str) -> None:
    """Known names, no repeats, and at least two replicates for cross-validated ones."""
    unknown = [d for d in distances if d not in DISTANCES]
    if unknown:
        raise ValueError(
            f"{where}: unknown distance {unknown[0]!r}; choose from {', '.join(DISTANCES)}"
        )
    if len(set(distances)) != len(distances):
        raise ValueError(f"{where}: distance listed twice in {list(distances)}")
    cv = [d for d in distances if d in CROSS_VALIDATED]
    if cv and n_replicates < 2:
        raise ValueError(
            f"{where}: distance {cv[0]!r} is cross-validated across replicates and needs "
            f"n_replicates >= 2, but the file has {n_replicates}; extract with "
            "extraction.n_replicates >= 2 or drop it from the distances"
        )


def needs_replicates(distances: list[str] | tuple[str, ...]) -> bool:
    return any(d in CROSS_VALIDATED for d in distances)


# --------------------------------------------------------------------------- tiles


@dataclass
class Tile:
    """The prepared arrays of a block of patterns, one entry per distance."""

    n: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    norms: dict[str, np.ndarray] = field(default_factory=dict)
    constant: dict[str, np.ndarray] = field(default_factory=dict)


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit length; rows of length 0 become NaN (distance undefined)."""
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    zero = norm == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x / norm[:, None]
    out[zero] = np.nan
    return out, zero


def pattern_shift(patterns: np.ndarray) -> np.ndarray:
    """The vector subtracted before Euclidean-type products: the mean pattern of a tile."""
    if patterns.ndim == 3:
        patterns = patterns.mean(axis=1)
    return patterns.mean(axis=0)


def prepare_tile(
    patterns: np.ndarray, distances: list[str] | tuple[str, ...], shift: np.ndarray
) -> Tile:
    """Prepare ``(t, P)`` means or ``(t, R, P)`` replicates (float64) for :func:`tile_pair`."""
    reps = patterns if patterns.ndim == 3 else None
    means = patterns.mean(axis=1) if reps is not None else patterns
    tile = Tile(means.shape[0])
    for distance in distances:
        if distance == "correlation":
            centred = means - means.mean(axis=1, keepdims=True)
            tile.arrays[distance], tile.constant[distance] = _unit_rows(centred)
        elif distance == "cosine":
            tile.arrays[distance], tile.constant[distance] = _unit_rows(means)
        elif distance in ("euclidean", "sqeuclidean"):
            if "euclidean" not in tile.arrays:
                shifted = means - shift
                tile.arrays["euclidean"] = shifted
                tile.norms["euclidean"] = np.einsum("ij,ij->i", shifted, shifted)
        elif distance == "crossnobis":
            if reps is None or reps.shape[1] < 2:
                raise ValueError("crossnobis needs the replicates of every pattern (R >= 2)")
            shifted = reps - shift
            tile.arrays[distance] = shifted
            sums = shifted.sum(axis=1)
            within = np.einsum("irp,irp->i", shifted, shifted)
            # c_ii = sum over ordered pairs of distinct folds a != b of x_i^a . x_i^b
            tile.norms[distance] = np.einsum("ip,ip->i", sums, sums) - within
        else:
            raise ValueError(f"unknown distance {distance!r}; choose from {', '.join(DISTANCES)}")
    return tile


def _cross_fold_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``C_ij = Σ_{f≠g} a_i^f · b_j^g`` for ``(t, R, P)`` arrays ``a`` and ``b``."""
    n_folds = a.shape[1]
    if n_folds == 2:
        return a[:, 0] @ b[:, 1].T + a[:, 1] @ b[:, 0].T
    out = a.sum(axis=1) @ b.sum(axis=1).T
    for f in range(n_folds):
        out -= a[:, f] @ b[:, f].T
    return out


def tile_pair(a: Tile, b: Tile, distance: str, n_features: int) -> np.ndarray:
    """Dissimilarities ``(a.n, b.n)`` between the patterns of two prepared tiles."""
    if distance in ("correlation", "cosine"):
        return 1.0 - a.arrays[distance] @ b.arrays[distance].T
    if distance in ("euclidean", "sqeuclidean"):
        xa, xb = a.arrays["euclidean"], b.arrays["euclidean"]
        sq = a.norms["euclidean"][:, None] + b.norms["euclidean"][None, :] - 2.0 * (xa @ xb.T)
        np.maximum(sq, 0.0, out=sq)
        return np.sqrt(sq) if distance == "euclidean" else sq / n_features
    if distance == "crossnobis":
        xa, xb = a.arrays[distance], b.arrays[distance]
        n_folds = xa.shape[1]
        cross = _cross_fold_product(xa, xb)
        d = a.norms[distance][:, None] + b.norms[distance][None, :] - 2.0 * cross
        return d / (n_folds * (n_folds - 1) * n_features)
    raise ValueError(f"unknown distance {distance!r}; choose from {', '.join(DISTANCES)}")


# --------------------------------------------------------------------------- condensed form


def n_pairs(n: int) -> int:
    """Entries of the condensed RDM of ``n`` patterns: ``n (n - 1) / 2``."""
    return n * (n - 1) // 2


def n_from_pairs(m: int) -> int:
    """The number of patterns of a condensed RDM with ``m`` entries."""
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n_pairs(n) != m:
        raise ValueError(f"{m} entries is not the condensed size of any RDM")
    return n


def row_offsets(n: int) -> np.ndarray:
    """Index in the condensed vector of pair ``(i, i+1)`` for every ``i`` (scipy's order)."""
    i = np.arange(n, dtype=np.int64)
    return i * n - i * (i + 1) // 2


def put_tile(
    out: np.ndarray, n: int, start_a: int, start_b: int, block: np.ndarray, same: bool
) -> None:
    """Write the dissimilarities of tile pair (rows ``start_a...``, columns ``start_b...``).

    The condensed vector holds pairs ``i < j`` row by row (``scipy.spatial.distance.squareform``
    order); ``same`` marks a tile with itself (only its upper triangle is written). Tiles are
    visited with ``start_a <= start_b``.
    """
    offsets = row_offsets(n)
    rows, cols = block.shape
    for r in range(rows):
        i = start_a + r
        if same:
            if r + 1 >= cols:
                continue
            first = offsets[i]
            out[first : first + cols - r - 1] = block[r, r + 1 :]
        else:
            first = offsets[i] + (start_b - i - 1)
            out[first : first + cols] = block[r]


def condensed_subset(rdm: np.ndarray, n: int, keep: np.ndarray) -> np.ndarray:
    """The condensed RDM of the patterns ``keep`` (in that order) of an RDM of ``n`` patterns."""
    keep = np.asarray(keep, dtype=np.int64)
    if len(keep) == n and (keep == np.arange(n)).all():
        return rdm
    i, j = np.triu_indices(len(keep), k=1)
    a, b = keep[i], keep[j]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return rdm[row_offsets(n)[lo] + (hi - lo - 1)]


def square(rdm: np.ndarray) -> np.ndarray:
    """The square symmetric matrix of a condensed RDM (zero diagonal)."""
    n = n_from_pairs(len(rdm))
    out = np.zeros((n, n), dtype=rdm.dtype)
    i, j = np.triu_indices(n, k=1)
    out[i, j] = rdm
    out[j, i] = rdm
    return out
