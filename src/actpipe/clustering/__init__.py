"""Clustering every layer: parameter sets, feature preparation, methods behind one interface,
quality scores, and the per-layer run that the workflow's ``cluster_layer`` rule calls.

Modules: :mod:`.params` (parameter sets), :mod:`.source` (reading a layer in blocks),
:mod:`.features` (preparation, streamed rows), :mod:`.methods` (one module per method),
:mod:`.quality` (scores), :mod:`.run` (one layer end to end).
"""

from ..errors import ClusteringError
from .features import ArrayRows, PreparedRows
from .methods import METHODS, ClusterMethod, ClusterResult, make_method
from .params import ParameterSet, resolve_parameter_set
from .quality import label_scores, layer_quality
from .run import cluster_layer, read_layer_clusters
from .source import LayerSource

__all__ = [
    "METHODS",
    "ArrayRows",
    "ClusterMethod",
    "ClusterResult",
    "ClusteringError",
    "LayerSource",
    "ParameterSet",
    "PreparedRows",
    "cluster_layer",
    "label_scores",
    "layer_quality",
    "make_method",
    "read_layer_clusters",
    "resolve_parameter_set",
]
