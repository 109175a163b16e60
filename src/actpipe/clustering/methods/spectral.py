"""Spectral clustering (scikit-learn), in memory; optionally after truncated SVD."""

from __future__ import annotations

import numpy as np

from ...errors import ClusteringError
from ..features import Rows
from .base import ClusterMethod, ClusterResult, check_distinct, member_means


class SpectralMethod(ClusterMethod):
    """:class:`sklearn.cluster.SpectralClustering` with k-means label assignment.

    ``affinity: rbf`` uses ``exp(-gamma ||x - y||^2)``; ``gamma`` null means
    ``1 / (dim * variance of the matrix)``. ``affinity: nearest_neighbors`` uses a symmetric
    ``n_neighbors`` graph. The affinity matrix is n x n, so more than ``max_rows`` rows is
    an error. The rows are the prepared features: activations, or activations x gradients
    (``input``), after the optional ``reduce: svd``. Centroids are cluster means.
    """

    name = "spectral"
    streaming = False

    def fit(self, rows: Rows) -> ClusterResult:
        from sklearn.cluster import SpectralClustering

        max_rows = self.check_in_memory(rows, "builds an n x n affinity")
        X = rows.load()
        k = self.check_k(X.shape[0], rows.where)
        check_distinct(X, k, rows.where)
        affinity = self.options.get("affinity", "rbf")
        info: dict[str, object] = {"affinity": affinity, "max_rows": max_rows}
        kwargs: dict[str, object] = {}
        if affinity == "rbf":
            gamma = self.options.get("gamma")
            if gamma is None:
                variance = float(X.var())
                gamma = 1.0 / (X.shape[1] * variance) if variance > 0 else 1.0
            kwargs["gamma"] = float(gamma)
            info["gamma"] = float(gamma)
        else:
            n_neighbors = int(self.options.get("n_neighbors", 10))
            if n_neighbors >= X.shape[0]:
                raise ClusteringError(
                    f"{rows.where}: n_neighbors={n_neighbors} needs more than {n_neighbors} "
                    f"rows (the layer has {X.shape[0]}); lower n_neighbors"
                )
            kwargs["n_neighbors"] = n_neighbors
            info["n_neighbors"] = n_neighbors
        model = SpectralClustering(
            n_clusters=k,
            affinity=affinity,
            random_state=self.seed,
            assign_labels="kmeans",
            **kwargs,
        )
        labels = model.fit_predict(X).astype(np.int64)
        means, _ = member_means([(np.arange(X.shape[0]), X)], labels, k, X.shape[1])
        return ClusterResult(labels, means, info)
