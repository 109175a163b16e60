"""Quality of one layer's clustering: inertia, silhouette, Davies-Bouldin, sizes, and scores
against stimulus labels (ARI, NMI, purity). Definitions are in docs/clustering.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .features import Rows, sample_size
from .methods.base import cluster_sums
from .params import COMMON_DEFAULTS

SILHOUETTE_WORKING_MB = 64
"""Memory for the silhouette's chunked pairwise distances (scikit-learn's default is 1 GB)."""


def layer_quality(
    rows: Rows,
    labels: np.ndarray,
    centroids: np.ndarray,
    silhouette_sample: int = COMMON_DEFAULTS["silhouette_sample"],
    seed: int = 0,
    distances: np.ndarray | None = None,
) -> dict[str, Any]:
    """Scores of ``labels`` over the prepared rows, streamed in two passes.

    * ``inertia``: sum over rows of the squared distance to the reported centroid of its
      cluster (with ``distances``, an array of ``rows.n``, each row's distance is kept);
    * ``nearest_own``: share of rows whose nearest centroid (ties: the lowest index) is their
      own cluster's: 1 for k-means-like assignments; the leader algorithm assigns a row to
      the first leader within its threshold, so it may be lower;
    * ``davies_bouldin``: scikit-learn's definition over the non-empty clusters (cluster
      means as centres), computed from streamed sums;
    * ``silhouette``: scikit-learn's silhouette on a seeded sample of at most
      ``silhouette_sample`` rows (and at most 64 MB of them; all rows when there are fewer);
      null when the sample holds fewer than 2 clusters or as many clusters as rows;
    * ``cluster_sizes``: rows per cluster, ``0..n_clusters-1``.
    """
    from sklearn.metrics import silhouette_score

    k = centroids.shape[0]
    dim = rows.dim
    sums = np.zeros((k, dim))
    counts = np.zeros(k, dtype=np.int64)
    inertia = 0.0
    nearest_own = 0
    C_sq = np.einsum("ij,ij->i", centroids, centroids)
    for positions, X in rows.blocks():
        lab = labels[positions]
        sums += cluster_sums(X, lab, k)
        counts += np.bincount(lab, minlength=k)
        x_sq = np.einsum("ij,ij->i", X, X)
        d2 = np.maximum(x_sq - 2.0 * np.einsum("ij,ij->i", X, centroids[lab]) + C_sq[lab], 0.0)
        inertia += float(d2.sum())
        if distances is not None:
            distances[positions] = np.sqrt(d2)
        nearest = np.argmin(C_sq[None, :] - 2.0 * (X @ centroids.T), axis=1)
        nearest_own += int((nearest == lab).sum())
    means = sums / np.maximum(counts, 1)[:, None]
    spread = np.zeros(k)
    for positions, X in rows.blocks():
        lab = labels[positions]
        spread += np.bincount(lab, weights=np.linalg.norm(X - means[lab], axis=1), minlength=k)
    present = counts > 0
    out: dict[str, Any] = {
        "n_rows": int(rows.n),
        "n_clusters": int(k),
        "n_nonempty": int(present.sum()),
        "inertia": inertia,
        "nearest_own": nearest_own / rows.n if rows.n else None,
        "davies_bouldin": davies_bouldin(means[present], spread[present] / counts[present]),
        "cluster_sizes": counts.tolist(),
    }
    positions, Xs = rows.sample(sample_size(silhouette_sample, rows.dim), seed)
    ls = labels[positions]
    n_labels = len(np.unique(ls))
    out["silhouette_rows"] = int(len(positions))
    if 2 <= n_labels <= len(positions) - 1:
        from sklearn import config_context

        with config_context(working_memory=SILHOUETTE_WORKING_MB):
            out["silhouette"] = float(silhouette_score(Xs, ls))
    else:
        out["silhouette"] = None
    return out


def davies_bouldin(centres: np.ndarray, spread: np.ndarray) -> float | None:
    """Davies-Bouldin index from cluster means and mean member-to-mean distances.

    ``mean_i max_{j != i} (s_i + s_j) / ||c_i - c_j||`` (scikit-learn's conventions: a zero
    centre distance counts as infinite; 0 when every spread and distance is 0).
    """
    k = centres.shape[0]
    if k < 2:
        return None
    diff = centres[:, None, :] - centres[None, :, :]
    dist = np.sqrt((diff**2).sum(axis=2))
    if np.allclose(spread, 0) or np.allclose(dist, 0):
        return 0.0
    dist[dist == 0] = np.inf
    combined = (spread[:, None] + spread[None, :]) / dist
    return float(np.mean(np.max(combined, axis=1)))


def purity(clusters: np.ndarray, truth: Sequence[Any]) -> float:
    """Share of rows whose label is their cluster's most frequent label."""
    truth_codes = np.unique(np.asarray(truth, dtype=object).astype(str), return_inverse=True)[1]
    table = np.zeros((int(clusters.max()) + 1, int(truth_codes.max()) + 1), dtype=np.int64)
    np.add.at(table, (clusters, truth_codes), 1)
    return float(table.max(axis=1).sum() / len(clusters))


def label_scores(clusters: np.ndarray, truth: Sequence[Any]) -> dict[str, float]:
    """ARI, NMI (arithmetic normalisation) and purity of ``clusters`` against ``truth``.

    Rows whose cluster is -1 (dropped for non-finite values) are left out.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    clusters = np.asarray(clusters)
    keep = clusters >= 0
    clusters = clusters[keep]
    truth_kept = np.asarray([str(t) for t in truth], dtype=object)[keep]
    if clusters.size == 0:
        return {"ari": float("nan"), "nmi": float("nan"), "purity": float("nan")}
    return {
        "ari": float(adjusted_rand_score(truth_kept, clusters)),
        "nmi": float(normalized_mutual_info_score(truth_kept, clusters)),
        "purity": purity(clusters, truth_kept),
    }
