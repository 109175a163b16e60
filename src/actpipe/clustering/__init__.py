"""Clustering every layer: parameter sets, feature preparation, methods behind one interface,
quality scores, and the per-layer run that the workflow's ``cluster_layer`` rule calls.

Modules: :mod:`.params` (parameter sets; standard library only, so the workflow resolves
parameter sets at parse time), :mod:`.source` (reading a layer in blocks), :mod:`.features`
(preparation, streamed rows), :mod:`.methods` (one module per method), :mod:`.quality`
(scores), :mod:`.run` (one layer end to end). The names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ClusteringError
from .params import ParameterSet, resolve_parameter_set

_LAZY = {
    "ArrayRows": ".features",
    "PreparedRows": ".features",
    "METHODS": ".methods",
    "ClusterMethod": ".methods",
    "ClusterResult": ".methods",
    "make_method": ".methods",
    "label_scores": ".quality",
    "layer_quality": ".quality",
    "cluster_layer": ".run",
    "read_layer_clusters": ".run",
    "LayerSource": ".source",
}

__all__ = ["ClusteringError", "ParameterSet", "resolve_parameter_set", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
