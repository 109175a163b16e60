"""Clustering every layer: methods behind one interface, feature reading, per-layer runs."""

from .features import layer_features
from .methods import METHODS, ClusteringError, ClusterMethod, ClusterResult, make_method
from .run import cluster_layer

__all__ = [
    "METHODS",
    "ClusterMethod",
    "ClusterResult",
    "ClusteringError",
    "cluster_layer",
    "layer_features",
    "make_method",
]
