"""The leader algorithm: one pass, a point joins the nearest leader within T or leads.

Definition (also in docs/clustering.md). Rows ``x_1 .. x_n`` are visited once, in storage
order (stimulus order; replicates in order). With ``L`` the leaders so far (empty at first)
and Euclidean distance ``d``:

* if ``L`` is empty or ``min_{l in L} d(x_i, l) > T``, ``x_i`` becomes a new leader and its
  own cluster (clusters are numbered in order of creation);
* otherwise ``x_i`` joins the cluster of its nearest leader in ``L`` (ties: the earliest).

Leaders never move and labels are never revised: a point keeps the leader it joined even
if a nearer leader appears later. Distances are compared squared, in float64.

``T`` is given (``threshold``), or found from ``k``: bisection over ``T`` on a seeded
sample of ``sample_size`` rows (at least 2k, at most 64 MB of them; kept in storage order)
until the sample yields ``k +- max(1, round(k_tolerance * k))`` leaders. The whole layer then
runs with that ``T``; it may yield more leaders than the sample did (both are reported).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from ...errors import ClusteringError
from ..features import ArrayRows, Rows, sample_size
from .base import ClusterMethod, ClusterResult, member_means

log = logging.getLogger(__name__)
BISECTION_STEPS = 60


class TooManyLeaders(ClusteringError):
    """More leaders than ``max_clusters``."""


def leader_pass(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    n: int,
    dim: int,
    threshold: float,
    max_clusters: int,
    where: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """``(labels (n,), leaders (L, dim))`` of one pass of the leader algorithm.

    Exact for blocks of any size: within a block, the rows farther than ``T`` from every
    earlier leader are checked one by one against the leaders made earlier in the block; then
    every row is labelled with its nearest leader among those that existed when it came.
    """
    t2 = float(threshold) ** 2
    leaders = np.empty((min(max_clusters, 1024), dim))
    count = 0
    leaders_sq = np.empty(leaders.shape[0])
    labels = np.full(n, -1, dtype=np.int64)
    for positions, X in blocks:
        m = X.shape[0]
        x_sq = np.einsum("ij,ij->i", X, X)
        if count:
            d2_old = x_sq[:, None] - 2.0 * (X @ leaders[:count].T) + leaders_sq[None, :count]
            np.maximum(d2_old, 0.0, out=d2_old)
            min_old = d2_old.min(axis=1)
        else:
            d2_old = np.zeros((m, 0))
            min_old = np.full(m, np.inf)
        new_rows: list[int] = []
        for i in np.flatnonzero(min_old > t2):
            if new_rows:
                new = X[new_rows]
                d2 = x_sq[i] - 2.0 * (new @ X[i]) + x_sq[new_rows]
                if np.maximum(d2, 0.0).min() <= t2:
                    continue
            new_rows.append(int(i))
            if count + len(new_rows) > max_clusters:
                raise TooManyLeaders(
                    f"{where}: the leader algorithm made more than {max_clusters} leaders with "
                    f"threshold {threshold:g}; raise the threshold (or lower k), or raise "
                    "max_clusters"
                )
        block_labels = np.argmin(d2_old, axis=1) if count else np.zeros(m, dtype=np.int64)
        if new_rows:
            created = np.asarray(new_rows)
            new = X[created]
            d2_new = x_sq[:, None] - 2.0 * (X @ new.T) + x_sq[created][None, :]
            np.maximum(d2_new, 0.0, out=d2_new)
            # a leader made at row p exists for rows after p only
            d2_new[np.arange(m)[:, None] <= created[None, :]] = np.inf
            both = np.concatenate([d2_old, d2_new], axis=1)
            block_labels = np.argmin(both, axis=1)
            block_labels[created] = count + np.arange(len(created))
            while count + len(created) > leaders.shape[0]:
                leaders = np.concatenate([leaders, np.empty_like(leaders)])
                leaders_sq = np.concatenate([leaders_sq, np.empty_like(leaders_sq)])
            leaders[count : count + len(created)] = new
            leaders_sq[count : count + len(created)] = x_sq[created]
            count += len(created)
        labels[positions] = block_labels
    return labels, leaders[:count].copy()


def count_leaders(X: np.ndarray, threshold: float, max_clusters: int) -> int:
    """Number of leaders on ``X`` (capped: ``max_clusters + 1`` means 'more')."""
    try:
        _, leaders = leader_pass(
            ArrayRows(X).blocks(), X.shape[0], X.shape[1], threshold, max_clusters
        )
    except TooManyLeaders:
        return max_clusters + 1
    return leaders.shape[0]


def find_threshold(
    X: np.ndarray, k: int, tolerance: int, max_clusters: int, where: str = ""
) -> tuple[float, int, int]:
    """``(T, leaders on X, bisection steps)``: bisection on T until ``|leaders - k| <= tolerance``.

    The number of leaders tends to fall as T grows (not always strictly): T = 0 gives one
    leader per distinct row; T = twice the largest distance from the first row bounds every
    pairwise distance, so it gives one leader. Bisection runs between the two.
    """
    diam = 2.0 * float(np.sqrt(((X - X[0]) ** 2).sum(axis=1).max()))
    if diam == 0.0:
        raise ClusteringError(f"{where}: every sampled row is identical; nothing to cluster")
    lo, hi = 0.0, diam
    cap = max(max_clusters, k + tolerance)
    best: tuple[int, float, int] | None = None
    for step in range(1, BISECTION_STEPS + 1):
        mid = 0.5 * (lo + hi)
        found = count_leaders(X, mid, cap)
        if best is None or abs(found - k) < best[0]:
            best = (abs(found - k), mid, found)
        if abs(found - k) <= tolerance:
            return mid, found, step
        if found > k:
            lo = mid
        else:
            hi = mid
    assert best is not None
    raise ClusteringError(
        f"{where}: no threshold gives {k} +- {tolerance} leaders on the sample (closest: "
        f"{best[2]} at T={best[1]:.6g}); raise k_tolerance, change k, or give threshold"
    )


class LeadersMethod(ClusterMethod):
    """The leader algorithm (module docstring), streaming over the layer once."""

    name = "leaders"
    streaming = True

    def fit(self, rows: Rows) -> ClusterResult:
        max_clusters = int(self.options.get("max_clusters", 5000))
        threshold = self.options.get("threshold")
        info: dict[str, object] = {"max_clusters": max_clusters}
        if self.k is not None:
            self.check_k(rows.n, rows.where)
        if threshold is None:
            k = int(self.k)  # type: ignore[arg-type]
            tolerance = max(1, int(round(float(self.options.get("k_tolerance", 0.1)) * k)))
            size = sample_size(self.options.get("sample_size", 5000), rows.dim, 2 * k)
            _, sample = rows.sample(size, self.seed)
            threshold, found, steps = find_threshold(sample, k, tolerance, max_clusters, rows.where)
            info.update(
                {
                    "threshold_from": "bisection",
                    "k_tolerance": tolerance,
                    "sample_rows": int(sample.shape[0]),
                    "sample_clusters": found,
                    "bisection_steps": steps,
                }
            )
        else:
            info["threshold_from"] = "config"
        labels, leaders = leader_pass(
            rows.blocks(), rows.n, rows.dim, float(threshold), max_clusters, rows.where
        )
        info["threshold"] = float(threshold)
        n_leaders = leaders.shape[0]
        if self.k is not None and info["threshold_from"] == "bisection":
            tol = int(info["k_tolerance"])  # type: ignore[call-overload]
            if abs(n_leaders - self.k) > tol:
                log.warning(
                    "%s: %d leaders on the whole layer (k=%d asked, %d on the sample)",
                    rows.where,
                    n_leaders,
                    self.k,
                    info["sample_clusters"],
                )
        if n_leaders < 2:
            raise ClusteringError(
                f"{rows.where}: the leader algorithm made {n_leaders} leader with threshold "
                f"{float(threshold):g}; lower the threshold"
            )
        means, _ = member_means(rows.blocks(), labels, n_leaders, rows.dim)
        return ClusterResult(labels, means, info, {"leaders": leaders})
