"""Reading a dashboard folder the way the cluster-path dashboard's backend reads it.

Plain ``json`` and ``os`` only, following the backend's reader: models are the folders of
its activation cache, cluster-path sets the sub-folders whose names start with ``set_``,
``metadata.json`` gives the layer order, ``set_XX/paths.json`` maps each example to its
path, ``set_XX/centroids.json`` each layer to its centroids; images of a cluster are the
examples whose path holds that cluster at the layer's index, and the Sankey links between
two layers are counted from the paths.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path


def list_models(cache: Path) -> list[str]:
    return [d.name for d in cache.iterdir() if d.is_dir()]


def list_cluster_path_sets(cache: Path, model: str) -> list[str]:
    return [
        n
        for n in os.listdir(cache / model)
        if (cache / model / n).is_dir() and n.startswith("set_")
    ]


def load_metadata(cache: Path, model: str) -> dict:
    with open(cache / model / "metadata.json") as f:
        return json.load(f)


def load_example_paths(cache: Path, model: str, set_name: str) -> dict:
    with open(cache / model / set_name / "paths.json") as f:
        return json.load(f)


def load_centroids(cache: Path, model: str, set_name: str) -> dict:
    with open(cache / model / set_name / "centroids.json") as f:
        return json.load(f)


def examples_in_cluster(
    cache: Path, model: str, set_name: str, layer: str, cluster: int
) -> list[str]:
    layers = load_metadata(cache, model)["layers"]
    index = layers.index(layer)
    paths = load_example_paths(cache, model, set_name)
    return [key for key, path in paths.items() if path[index] == cluster]


def sankey_links(cache: Path, model: str, set_name: str) -> list[Counter]:
    """For each pair of consecutive layers, counts of (cluster at one, cluster at the next)."""
    layers = load_metadata(cache, model)["layers"]
    paths = load_example_paths(cache, model, set_name)
    return [
        Counter((path[i], path[i + 1]) for path in paths.values() if min(path[i : i + 2]) >= 0)
        for i in range(len(layers) - 1)
    ]
