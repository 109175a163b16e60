"""k-means on the whole matrix: scikit-learn's Lloyd iterations, or faiss when installed."""

from __future__ import annotations

import numpy as np

from ...errors import ClusteringError
from ..features import Rows
from .base import ClusterMethod, ClusterResult, check_distinct, nearest


class KMeansMethod(ClusterMethod):
    """k-means++ initialisation, ``n_init`` restarts, the lowest inertia kept.

    ``backend: sklearn`` (default) is :class:`sklearn.cluster.KMeans`; ``backend: faiss``
    uses ``faiss.Kmeans`` (optional, ``pip install faiss-cpu``) and returns the same outputs:
    labels are each row's nearest centre, centroids the fitted centres.
    """

    name = "kmeans"
    streaming = False

    def fit(self, rows: Rows) -> ClusterResult:
        X = rows.load()
        k = self.check_k(X.shape[0], rows.where)
        check_distinct(X, k, rows.where)
        n_init = int(self.options.get("n_init", 10))
        max_iter = int(self.options.get("max_iter", 300))
        backend = self.options.get("backend", "sklearn")
        if backend == "faiss":
            return self._fit_faiss(X, k, n_init, max_iter, rows.where)
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=self.seed)
        labels = model.fit_predict(X)
        return ClusterResult(
            labels.astype(np.int64),
            np.asarray(model.cluster_centers_, dtype=np.float64),
            {
                "backend": "sklearn",
                "n_init": n_init,
                "max_iter": max_iter,
                "n_iter": int(model.n_iter_),
                "fit_inertia": float(model.inertia_),
            },
        )

    def _fit_faiss(
        self, X: np.ndarray, k: int, n_init: int, max_iter: int, where: str
    ) -> ClusterResult:
        try:
            import faiss  # type: ignore[import-not-found]
        except ImportError:
            raise ClusteringError(
                f"{where}: backend 'faiss' needs the faiss package (pip install faiss-cpu); "
                "or use backend: sklearn"
            ) from None
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        km = faiss.Kmeans(
            X.shape[1],
            k,
            niter=max_iter,
            nredo=n_init,
            seed=self.seed,
            verbose=False,
            min_points_per_centroid=1,
        )
        km.train(X32)
        centres = np.asarray(km.centroids, dtype=np.float64)
        labels, d2 = nearest(X, centres)
        return ClusterResult(
            labels.astype(np.int64),
            centres,
            {
                "backend": "faiss",
                "n_init": n_init,
                "max_iter": max_iter,
                "fit_inertia": float(d2.sum()),
            },
        )
