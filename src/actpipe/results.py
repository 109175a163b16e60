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

LAYER_CLUSTERS_DIR = "layers"
"""Sub-folder of a parameter set's folder holding one clustering file per layer."""
