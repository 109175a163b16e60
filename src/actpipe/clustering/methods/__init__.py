"""Clustering methods behind one interface, registered by the name the config uses."""

from __future__ import annotations

from ...errors import ClusteringError
from ..params import ParameterSet
from .agglomerative import AgglomerativeMethod
from .base import ClusterMethod, ClusterResult
from .kmeans import KMeansMethod
from .leaders import LeadersMethod, find_threshold, leader_pass
from .minibatch import MiniBatchKMeansMethod
from .spectral import SpectralMethod

METHODS: dict[str, type[ClusterMethod]] = {
    cls.name: cls
    for cls in (
        KMeansMethod,
        MiniBatchKMeansMethod,
        AgglomerativeMethod,
        LeadersMethod,
        SpectralMethod,
    )
}


def make_method(pset: ParameterSet) -> ClusterMethod:
    """The method of a resolved parameter set, with its options."""
    cls = METHODS.get(pset.method)
    if cls is None:
        raise ClusteringError(
            f"unknown clustering method {pset.method!r}; choose one of {', '.join(METHODS)}"
        )
    return cls(pset.k, pset.seed, **pset.options)


__all__ = [
    "METHODS",
    "AgglomerativeMethod",
    "ClusterMethod",
    "ClusterResult",
    "KMeansMethod",
    "LeadersMethod",
    "MiniBatchKMeansMethod",
    "SpectralMethod",
    "find_threshold",
    "leader_pass",
    "make_method",
]
