"""Page data of one run and one stimulus set: what the run pages load, split into chunks.

For a run (one stimulus set, model and parameter set) :func:`prepare_run` computes from
``paths.json``, ``metadata.json``, ``quality.tsv``, ``distances.h5`` and the set's stimulus
table:

* the distinct *complete* cluster paths (no layer dropped) ranked by how many examples take
  them (ties: the lexicographically smaller path first), and each example's path rank and
  path count;
* per layer and cluster: its size, its majority value of every label column (ties: the
  first value in label order) with that value's share, its label composition, and its
  members ordered by distance to the centroid (ties and runs without distances: example
  order), with each member's rank in that order.

:func:`write_run` writes them as data files (keys relative to ``data/``; ``{run}`` is
``{set}/{model}/{parameter_set}`` as layer keys)::

    runs/{run}/run                       layers, sizes, majority labels, top paths, quality
    runs/{run}/transitions               transitions.json's links (the "all transitions" view)
    runs/{run}/layers/{layer}            per cluster: label composition, distance range
    runs/{run}/members/{layer}/{c}-{j}   members j*M .. (j+1)*M-1 of cluster c, nearest first
    runs/{run}/paths/{j}                 examples j*P .. (j+1)*P-1: paths, distances, ranks

When example i is stimulus i (replicate means of every stimulus, the usual case), chunks hold
example indices only; otherwise they add example ids and stimulus indices.

:func:`write_stimuli` writes a set's ``sets/{set}/labels`` (label columns and values) and
``sets/{set}/stimuli/{j}`` (ids and label codes of stimuli j*S .. (j+1)*S-1).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..clustering.features import describe_space
from ..names import layer_key
from ..results import CLUSTER_OUTPUTS
from .files import SiteWriter
from .options import SiteOptions
from .tree import Run, StimulusTable, stimulus_of


@dataclass
class RunData:
    """Everything the run pages show about one run (see module docstring)."""

    run: Run
    table: StimulusTable
    ids: list[str]
    matrix: np.ndarray  # (n, L) cluster of each example at each layer; -1 dropped
    stimulus: np.ndarray  # (n,) index into the stimulus table
    replicate: np.ndarray  # (n,) replicate, -1 for replicate means
    distances: np.ndarray | None  # (n, L) distance to own centroid; NaN dropped
    path_rank: np.ndarray  # (n,) rank of the example's complete path; -1 incomplete
    path_count: np.ndarray  # (n,) examples sharing that path; 0 incomplete
    top_paths: np.ndarray  # (M, L) the M most common complete paths
    top_counts: np.ndarray  # (M,)
    distinct: int  # distinct complete paths
    complete: int  # examples with a complete path
    n_clusters: list[int]  # per layer
    orders: list[np.ndarray]  # per layer: example indices by (cluster, distance, index)
    starts: list[np.ndarray]  # per layer: (K+1,) offsets of each cluster in orders
    member_rank: np.ndarray  # (n, L) position in the cluster's order; -1 dropped

    @property
    def layers(self) -> list[str]:
        return self.run.layers

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def exposures(self) -> bool:
        return not str(self.run.metadata.get("examples", "stimuli")).startswith("stimuli")

    @property
    def identity(self) -> bool:
        """Whether example i is stimulus i of the set (then chunks leave out ids and
        stimulus indices: the stimulus table has them)."""
        return not self.exposures and np.array_equal(self.stimulus, np.arange(self.n))

    def sizes(self, layer: int) -> np.ndarray:
        return np.diff(self.starts[layer])


def example_signature(ids: list[str]) -> str:
    """A short digest of an ordered example list: runs with equal ones share example indices."""
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()[:16]


def path_table(
    matrix: np.ndarray, keep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(path rank, path count, top ``keep`` paths, their counts, distinct, complete).

    Only complete paths (no -1) are ranked: by count, descending; ties by the path itself,
    ascending. Incomplete examples get rank -1 and count 0.
    """
    n, n_layers = matrix.shape
    rank = np.full(n, -1, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    complete = (matrix >= 0).all(axis=1) if n_layers else np.zeros(n, dtype=bool)
    if not complete.any():
        return rank, count, np.zeros((0, n_layers), np.int64), np.zeros(0, np.int64), 0, 0
    unique, inverse, counts = np.unique(
        matrix[complete], axis=0, return_inverse=True, return_counts=True
    )
    inverse = inverse.reshape(-1)
    order = np.argsort(-counts, kind="stable")  # unique rows are sorted: ties stay in order
    rank_of = np.empty(len(unique), dtype=np.int64)
    rank_of[order] = np.arange(len(unique))
    rank[complete] = rank_of[inverse]
    count[complete] = counts[inverse]
    top = order[:keep]
    return rank, count, unique[top], counts[top], len(unique), int(complete.sum())


def prepare_run(run: Run, table: StimulusTable, options: SiteOptions) -> RunData:
    """Compute a run's page data (see module docstring)."""
    ids, matrix = run.load_paths()
    examples = str(run.metadata.get("examples", "stimuli"))
    stimulus = np.empty(len(ids), dtype=np.int64)
    replicate = np.empty(len(ids), dtype=np.int64)
    index = table.index
    for i, example_id in enumerate(ids):
        sid, rep = stimulus_of(example_id, examples)
        position = index.get(sid)
        if position is None:
            raise ValueError(
                f"{run.folder / 'paths.json'}: stimulus {sid!r} is not in the thumbnails of "
                f"set {run.stimulus_set!r} ({table.folder}); the stimulus folder changed after "
                "extraction: rerun the workflow"
            )
        stimulus[i], replicate[i] = position, rep
    layers = run.layers
    per_layer = run.metadata.get("clusters_per_layer", {})
    n_clusters = []
    for j, name in enumerate(layers):
        highest = int(matrix[:, j].max()) + 1 if len(ids) else 0
        n_clusters.append(max(int(per_layer.get(name, 0)), highest))
    distances = run.load_distances()
    dist = None
    if distances is not None:
        dist = np.stack([distances[name] for name in layers], axis=1)
        if dist.shape != matrix.shape:
            raise ValueError(
                f"{run.folder / CLUSTER_OUTPUTS['distances']}: {dist.shape[0]} examples, "
                f"paths.json has {matrix.shape[0]}; rerun the clustering (rule cluster_paths)"
            )
    rank, count, top, top_counts, distinct, complete = path_table(matrix, options.max_paths)
    orders, starts = [], []
    member_rank = np.full(matrix.shape, -1, dtype=np.int64)
    positions = np.arange(len(ids))
    for j in range(len(layers)):
        clusters = matrix[:, j]
        key = np.zeros(len(ids)) if dist is None else np.nan_to_num(dist[:, j], nan=np.inf)
        order = np.lexsort((positions, key, clusters))
        order = order[clusters[order] >= 0]
        sizes = np.bincount(clusters[order], minlength=n_clusters[j])
        start = np.concatenate([[0], np.cumsum(sizes)])
        member_rank[order, j] = np.arange(len(order)) - start[clusters[order]]
        orders.append(order)
        starts.append(start)
    return RunData(
        run=run,
        table=table,
        ids=ids,
        matrix=matrix,
        stimulus=stimulus,
        replicate=replicate,
        distances=dist,
        path_rank=rank,
        path_count=count,
        top_paths=top,
        top_counts=top_counts,
        distinct=distinct,
        complete=complete,
        n_clusters=n_clusters,
        orders=orders,
        starts=starts,
        member_rank=member_rank,
    )


def round_significant(values: np.ndarray, digits: int = 4) -> list[float | None]:
    """Values rounded to about ``digits`` significant digits of the largest; NaN -> None."""
    finite = np.isfinite(values)
    if not finite.any():
        return [None] * len(values)
    largest = float(np.abs(values[finite]).max())
    decimals = digits - 1 - (int(math.floor(math.log10(largest))) if largest > 0 else 0)
    rounded = np.round(values, min(max(decimals, 0), 12))
    out: list[float | None] = rounded.tolist()
    if not finite.all():
        for i in np.flatnonzero(~finite):
            out[i] = None
    return out


def label_counts(data: RunData, layer: int, codes: np.ndarray, n_values: int) -> np.ndarray:
    """(K, V) counts of each label value among each cluster's members at ``layer``."""
    k = data.n_clusters[layer]
    clusters = data.matrix[:, layer]
    valid = clusters >= 0
    flat = clusters[valid] * n_values + codes[data.stimulus[valid]]
    return np.bincount(flat, minlength=k * n_values).reshape(k, n_values)


def majority(counts: np.ndarray) -> tuple[list[int | None], list[float | None]]:
    """Per cluster: the most frequent value (first in label order on ties) and its share."""
    sizes = counts.sum(axis=1)
    best = counts.argmax(axis=1)
    codes: list[int | None] = []
    shares: list[float | None] = []
    for c, size in enumerate(sizes):
        if size == 0:
            codes.append(None)
            shares.append(None)
        else:
            codes.append(int(best[c]))
            shares.append(round(float(counts[c, best[c]] / size), 4))
    return codes, shares


def composition(counts: np.ndarray, keep: int) -> tuple[list[list[list[int]]], list[int]]:
    """Per cluster: ``[[code, count], ...]`` of its ``keep`` commonest values, and the rest."""
    out, rest = [], []
    for row in counts:
        nonzero = np.flatnonzero(row)
        order = nonzero[np.lexsort((nonzero, -row[nonzero]))]
        shown = order[:keep]
        out.append([[int(v), int(row[v])] for v in shown])
        rest.append(int(row.sum() - row[shown].sum()))
    return out, rest


def run_summary(data: RunData) -> dict[str, Any]:
    """The run's entry in ``index``: names, keys, sizes (what the overview lists)."""
    run = data.run
    return {
        "set": run.stimulus_set,
        "model": run.model,
        "pset": run.parameter_set,
        "key": run.key,
        "method": run.metadata.get("method", ""),
        "n": data.n,
        "layers": data.layers,
        "layerKeys": [layer_key(name) for name in data.layers],
        "distinct": data.distinct,
        "complete": data.complete,
        "exposures": data.exposures,
        "signature": example_signature(data.ids),
        "distances": data.distances is not None,
    }


def write_run(data: RunData, site: SiteWriter, options: SiteOptions) -> dict[str, Any]:
    """Write a run's data files (see module docstring); return :func:`run_summary`."""
    run = data.run
    base = f"runs/{run.key}"
    codes = data.table.label_codes
    quality = {row["layer"]: row for row in run.quality_values()}
    space = run.metadata.get("features", {})
    layers = []
    member_chunks = []
    for j, name in enumerate(data.layers):
        lkey = layer_key(name)
        sizes = data.sizes(j)
        entry: dict[str, Any] = {
            "name": name,
            "key": lkey,
            "k": data.n_clusters[j],
            "sizes": sizes.tolist(),
            "dropped": int((data.matrix[:, j] < 0).sum()),
            "dim": run.metadata.get("feature_dims", {}).get(name),
            "space": _space(space.get(name, {})),
            "majority": {},
            "share": {},
            "quality": quality.get(name, {}),
        }
        layer_file: dict[str, Any] = {"composition": {}, "rest": {}, "distance": None}
        for column, (values, value_codes) in codes.items():
            counts = label_counts(data, j, value_codes, len(values))
            entry["majority"][column], entry["share"][column] = majority(counts)
            shown, rest = composition(counts, options.composition_values)
            layer_file["composition"][column] = shown
            layer_file["rest"][column] = rest
        if data.distances is not None:
            layer_file["distance"] = _distance_ranges(data, j)
        site.data(f"{base}/layers/{lkey}", layer_file)
        layers.append(entry)
        member_chunks.append(_write_members(data, j, site, f"{base}/members/{lkey}", options))
    site.data(
        f"{base}/run",
        {
            **run_summary(data),
            "params": run.metadata.get("params", {}),
            "labels": list(codes),
            "layers": layers,
            "top": {"paths": data.top_paths.tolist(), "counts": data.top_counts.tolist()},
            "chunks": {
                "identity": data.identity,
                "paths": options.paths_chunk,
                "members": options.members_chunk,
                "memberFiles": member_chunks,
            },
            "options": {"topPaths": options.top_paths, "perPage": options.members_per_page},
        },
    )
    site.data(f"{base}/transitions", {"links": [t["links"] for t in run.load_transitions()]})
    _write_paths(data, site, f"{base}/paths", options.paths_chunk)
    return run_summary(data)


def _space(features: dict[str, Any]) -> str:
    return describe_space(features) if features else ""


def _distance_ranges(data: RunData, layer: int) -> list[list[float] | None]:
    """Per cluster: [nearest, median, farthest] distance to the centroid."""
    assert data.distances is not None
    out: list[list[float] | None] = []
    order, start = data.orders[layer], data.starts[layer]
    values = data.distances[order, layer]
    for c in range(data.n_clusters[layer]):
        a, b = int(start[c]), int(start[c + 1])
        if a == b:
            out.append(None)
            continue
        chunk = values[a:b]
        out.append([round(float(x), 6) for x in (chunk[0], np.median(chunk), chunk[-1])])
    return out


def _write_members(
    data: RunData, layer: int, site: SiteWriter, base: str, options: SiteOptions
) -> list[int]:
    """Write the member chunks of every cluster of a layer; return chunks per cluster."""
    order, start = data.orders[layer], data.starts[layer]
    size = options.members_chunk
    distances = data.distances
    counts = []
    for c in range(data.n_clusters[layer]):
        members = order[int(start[c]) : int(start[c + 1])]
        n_chunks = -(-len(members) // size)
        for j in range(n_chunks):
            part = members[j * size : (j + 1) * size]
            chunk: dict[str, Any] = {"e": part.tolist()}
            if not data.identity:
                chunk["s"] = data.stimulus[part].tolist()
            if distances is not None:
                chunk["d"] = round_significant(distances[part, layer])
            if data.exposures:
                chunk["r"] = data.replicate[part].tolist()
            site.data(f"{base}/{c}-{j}", chunk)
        counts.append(n_chunks)
    return counts


def _write_paths(data: RunData, site: SiteWriter, base: str, size: int) -> None:
    distances = None
    if data.distances is not None:
        columns = [round_significant(data.distances[:, j]) for j in range(len(data.layers))]
        distances = [list(row) for row in zip(*columns, strict=True)] if columns else None
    for j in range(-(-data.n // size)):
        a, b = j * size, min(data.n, (j + 1) * size)
        chunk: dict[str, Any] = {}
        if not data.identity:
            chunk["ids"] = data.ids[a:b]
            chunk["s"] = data.stimulus[a:b].tolist()
        chunk |= {
            "p": data.matrix[a:b].tolist(),
            "pc": data.path_count[a:b].tolist(),
            "pr": data.path_rank[a:b].tolist(),
            "rk": data.member_rank[a:b].tolist(),
        }
        if distances is not None:
            chunk["d"] = distances[a:b]
        if data.exposures:
            chunk["r"] = data.replicate[a:b].tolist()
        site.data(f"{base}/{j}", chunk)


def write_stimuli(table: StimulusTable, site: SiteWriter, size: int) -> dict[str, Any]:
    """Write a set's label dictionary and stimulus chunks; return the set's index entry."""
    base = f"sets/{table.key}"
    codes = table.label_codes
    thumbs = f"thumbnails/{table.key}"
    site.data(
        f"{base}/labels",
        {"columns": list(codes), "values": {c: values for c, (values, _) in codes.items()}},
    )
    widths, heights = table.manifest["width"], table.manifest["height"]
    for j in range(-(-len(table) // size)):
        a, b = j * size, min(len(table), (j + 1) * size)
        site.data(
            f"{base}/stimuli/{j}",
            {
                "ids": table.ids[a:b],
                "labels": {c: value_codes[a:b].tolist() for c, (_, value_codes) in codes.items()},
                "w": widths[a:b],
                "h": heights[a:b],
            },
        )
    return {
        "name": table.name,
        "key": table.key,
        "n": len(table),
        "labels": list(codes),
        "nValues": {c: len(values) for c, (values, _) in codes.items()},
        "chunk": size,
        "thumbnails": {
            "pattern": f"{thumbs}/" + table.manifest["pattern"],
            "shard": table.manifest["shard"],
            "size": table.manifest["size"],
            "unreadable": sorted(table.unreadable),
        },
    }
