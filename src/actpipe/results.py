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
    "distances": "distances.h5",
}
"""What aggregating one (stimulus set, model, parameter set) writes into its folder
``results/clusters/{set}/{model}/{parameter_set}/`` (schemas in docs/clustering.md)."""

THUMBNAILS = "results/thumbnails"
"""Folder of the thumbnails of each stimulus set (rule ``make_thumbnails``)."""

LAYER_CLUSTERS_DIR = "layers"
"""Sub-folder of a parameter set's folder holding one clustering file per layer."""

GRADIENT = "gradient"
ACTIVATION_X_GRADIENT = "activation_x_gradient"
QUANTITIES = (GRADIENT, ACTIVATION_X_GRADIENT)
"""What a gradient file (``results/gradients/{set}/{model}.h5``) stores per layer: the
gradient of the target w.r.t. the layer's output, and activation x gradient, each reduced with
the layer's reduction. Each is a layer dataset's ``quantity`` attribute and the name of the
group holding that quantity (docs/format.md)."""
