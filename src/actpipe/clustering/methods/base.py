"""The interface every clustering method implements, and helpers they share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ...errors import ClusteringError
from ..features import Rows


@dataclass
class ClusterResult:
    """Labels ``(n,)`` in ``0..n_clusters-1`` over the prepared rows, centroids and a report.

    ``centroids`` are in the space that was clustered (after standardization/reduction).
    ``info`` reports what the method used and found; ``arrays`` holds extra per-method
    arrays (e.g. the leaders) written beside the labels.
    """

    labels: np.ndarray
    centroids: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return int(self.centroids.shape[0])


class ClusterMethod:
    """Base class: subclasses set :attr:`name`, :attr:`streaming` and implement :meth:`fit`.

    ``streaming`` methods read the rows block by block and never hold the layer; the others
    call ``rows.load()``.
    """

    name: ClassVar[str] = ""
    streaming: ClassVar[bool] = False

    def __init__(self, k: int | None, seed: int = 0, **options: Any) -> None:
        self.k = None if k is None else int(k)
        self.seed = int(seed)
        self.options = options

    def check_in_memory(self, rows: Rows, needs: str, extra: str = "") -> int:
        """Refuse more than the ``max_rows`` option (default 10,000) for an O(n^2) method;
        returns that limit."""
        max_rows = int(self.options.get("max_rows", 10000))
        if rows.n > max_rows:
            raise ClusteringError(
                f"{rows.where}: {self.name} clustering {needs} and the layer has {rows.n} rows "
                f"(max_rows={max_rows}); use method minibatch_kmeans or leaders (streaming), "
                f"or raise max_rows if the memory is there{extra}"
            )
        return max_rows

    def check_k(self, n: int, where: str) -> int:
        """``k`` itself, after checking ``2 <= k <= n``."""
        if self.k is None:
            raise ClusteringError(f"{where}: method {self.name!r} needs k")
        if self.k < 2:
            raise ClusteringError(f"{where}: k must be at least 2, got {self.k}")
        if n < self.k:
            raise ClusteringError(
                f"{where}: k={self.k} clusters asked for but only {n} example(s) "
                f"{'is' if n == 1 else 'are'} available; lower k in the parameter set"
            )
        return self.k

    def fit(self, rows: Rows) -> ClusterResult:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "k": self.k, "seed": self.seed, **self.options}


def check_distinct(X: np.ndarray, k: int, where: str) -> int:
    """Number of distinct rows; an error when fewer than ``k`` (e.g. a constant layer)."""
    distinct = int(np.unique(X, axis=0).shape[0]) if X.shape[0] else 0
    if distinct < k:
        raise ClusteringError(
            f"{where}: only {distinct} distinct row(s) for k={k} clusters (a layer constant "
            "across examples?); lower k or cluster another layer"
        )
    return distinct


def squared_distances(X: np.ndarray, C: np.ndarray, C_sq: np.ndarray | None = None) -> np.ndarray:
    """``||x - c||^2`` for every row of ``X`` and ``C`` (expanded form, clipped at 0)."""
    if C_sq is None:
        C_sq = np.einsum("ij,ij->i", C, C)
    X_sq = np.einsum("ij,ij->i", X, X)
    d2 = X_sq[:, None] - 2.0 * (X @ C.T) + C_sq[None, :]
    np.maximum(d2, 0.0, out=d2)
    return d2


def nearest(
    X: np.ndarray, C: np.ndarray, C_sq: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest row of ``C`` for every row of ``X`` (ties: lowest index), and its
    squared distance."""
    d2 = squared_distances(X, C, C_sq)
    labels = np.argmin(d2, axis=1)
    return labels, d2[np.arange(X.shape[0]), labels]


def assign_nearest(rows: Rows, centres: np.ndarray) -> np.ndarray:
    """Streaming pass: the nearest centre of every row."""
    labels = np.empty(rows.n, dtype=np.int64)
    C_sq = np.einsum("ij,ij->i", centres, centres)
    for positions, X in rows.blocks():
        labels[positions], _ = nearest(X, centres, C_sq)
    return labels


def cluster_sums(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Sum of the rows of each cluster, ``(k, dim)`` (a sparse indicator product)."""
    from scipy.sparse import csr_matrix

    m = X.shape[0]
    indicator = csr_matrix((np.ones(m), (labels, np.arange(m))), shape=(k, m))
    return np.asarray(indicator @ X)


def member_means(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]], labels: np.ndarray, k: int, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(means (k, dim), counts (k,))`` of the rows of each cluster (streamed)."""
    sums = np.zeros((k, dim))
    counts = np.zeros(k, dtype=np.int64)
    for positions, X in blocks:
        lab = labels[positions]
        sums += cluster_sums(X, lab, k)
        counts += np.bincount(lab, minlength=k)
    return sums / np.maximum(counts, 1)[:, None], counts
