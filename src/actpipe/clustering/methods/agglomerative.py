"""Agglomerative (hierarchical) clustering: ward, average or complete linkage, in memory."""

from __future__ import annotations

import numpy as np

from ..features import Rows
from .base import ClusterMethod, ClusterResult, check_distinct, member_means


class AgglomerativeMethod(ClusterMethod):
    """:class:`sklearn.cluster.AgglomerativeClustering` with Euclidean distances.

    It needs O(n^2) memory, so more than ``max_rows`` rows is an error that points to a
    streaming method. Centroids are the mean of each cluster's rows.
    """

    name = "agglomerative"
    streaming = False

    def fit(self, rows: Rows) -> ClusterResult:
        from sklearn.cluster import AgglomerativeClustering

        max_rows = self.check_in_memory(
            rows, "needs O(n^2) memory", f" (about {rows.n**2 * 4 / 1e9:.1f} GB)"
        )
        X = rows.load()
        k = self.check_k(X.shape[0], rows.where)
        check_distinct(X, k, rows.where)
        linkage = self.options.get("linkage", "ward")
        labels = AgglomerativeClustering(n_clusters=k, linkage=linkage).fit_predict(X)
        labels = labels.astype(np.int64)
        means, _ = member_means([(np.arange(X.shape[0]), X)], labels, k, X.shape[1])
        return ClusterResult(labels, means, {"linkage": linkage, "max_rows": max_rows})
