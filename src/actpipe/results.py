"""The names of the files in a results tree that more than one part of actpipe needs.

Standard library only: the Snakefile reads it at parse time, and the library writes and
reads the same names from here.
"""

from __future__ import annotations

CLUSTER_OUTPUTS: dict[str, str] = {
    "paths": "paths.json",
    "transitions": "transitions.json",
    "centroids": "centroids.json",
    "centroids_h5": "centroids.h5",
    "metadata": "metadata.json",
    "quality": "quality.tsv",
}
"""What aggregating one (stimulus set, model, parameter set) writes into its folder
``results/clusters/{set}/{model}/{parameter_set}/`` (schemas in docs/clustering.md)."""

MEMBER_DISTANCES = "distances.h5"
"""Each example's distance to its cluster's centroid, per layer, in a parameter set's folder
(rule ``member_distances``; the results site orders cluster members by it)."""

THUMBNAILS = "results/thumbnails"
"""Folder of the thumbnails of each stimulus set (rule ``make_thumbnails``)."""

LAYER_CLUSTERS_DIR = "layers"
"""Sub-folder of a parameter set's folder holding one clustering file per layer."""
