"""Clustering methods behind one interface: fit on a feature matrix, give labels and centroids.

Each method is a class registered in :data:`METHODS` under the name used in the config's
parameter sets (``method: kmeans``). ``fit`` returns a :class:`ClusterResult` that also
reports the parameters actually used, so outputs document themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


class ClusteringError(ValueError):
    """Parameters or data that a clustering method cannot work with."""


@dataclass
class ClusterResult:
    """Labels ``(n,)`` in ``0..k-1``, centroids ``(k, d)`` and a description of the fit."""

    labels: np.ndarray
    centroids: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return int(self.centroids.shape[0])


def centroids_of(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Mean of the rows of each cluster (float64), for methods without their own centres."""
    d = X.shape[1]
    sums = np.zeros((k, d), dtype=np.float64)
    np.add.at(sums, labels, X)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    return sums / np.maximum(counts, 1.0)[:, None]


class ClusterMethod:
    """Base class: subclasses set ``name`` and implement :meth:`fit`."""

    name: ClassVar[str] = ""

    def __init__(self, k: int, seed: int = 0, **options: Any) -> None:
        self.k = int(k)
        self.seed = int(seed)
        self.options = options

    def check(self, X: np.ndarray, where: str) -> None:
        n = X.shape[0]
        if self.k < 2:
            raise ClusteringError(f"{where}: k must be at least 2, got {self.k}")
        if n < self.k:
            raise ClusteringError(
                f"{where}: k={self.k} clusters asked for but only {n} example(s); "
                "lower k in the parameter set"
            )

    def fit(self, X: np.ndarray, where: str = "") -> ClusterResult:  # pragma: no cover
        raise NotImplementedError


class KMeansMethod(ClusterMethod):
    """scikit-learn's k-means (Lloyd, k-means++ init) with a fixed seed."""

    name = "kmeans"

    def fit(self, X: np.ndarray, where: str = "") -> ClusterResult:
        from sklearn.cluster import KMeans

        self.check(X, where)
        n_init = int(self.options.get("n_init", 10))
        max_iter = int(self.options.get("max_iter", 300))
        model = KMeans(n_clusters=self.k, n_init=n_init, max_iter=max_iter,
                       random_state=self.seed)
        labels = model.fit_predict(X)
        return ClusterResult(
            labels.astype(np.int64),
            model.cluster_centers_.astype(np.float64),
            {"method": self.name, "k": self.k, "seed": self.seed, "n_init": n_init,
             "max_iter": max_iter, "n_iter": int(model.n_iter_), "inertia": float(model.inertia_)},
        )


METHODS: dict[str, type[ClusterMethod]] = {KMeansMethod.name: KMeansMethod}


def make_method(params: dict[str, Any]) -> ClusterMethod:
    """Instantiate the method named by ``params['method']`` with the remaining parameters."""
    params = dict(params)
    name = params.pop("method", None)
    if name not in METHODS:
        raise ClusteringError(f"unknown clustering method {name!r}; choose one of {sorted(METHODS)}")
    if "k" not in params:
        raise ClusteringError(f"clustering method {name!r} needs 'k' (number of clusters)")
    params.pop("replicates", None)
    return METHODS[name](**params)
