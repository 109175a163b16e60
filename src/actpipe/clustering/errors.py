"""The one exception type of the clustering suite."""

from __future__ import annotations


class ClusteringError(ValueError):
    """Parameters or data that a clustering method cannot work with.

    Messages name the file, model, layer and parameter set concerned and say what to change.
    """
