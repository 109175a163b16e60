"""Cluster paths and centroids in the file layout of the cluster-path dashboard.

An ONNX backend for a dashboard of cluster paths keeps, per model, a folder the dashboard
reads (``--layout gatormind`` of ``actpipe export``)::

    OUT_DIR/                   the dashboard's folder of one model
        metadata.json          {"num_examples": N, "layers": [...], "k": K, ...}
        set_01/paths.json      {example key: [its cluster at each layer, in layer order]}
        set_01/centroids.json  {layer: [[centroid values], ...]}
        set_02/ ...            one set per parameter set exported, in the order given

:func:`export_dashboard` writes that layout from the folders of one or more parameter sets
of the same model and stimulus set (``results/clusters/{set}/{model}/{parameter_set}/``, or
``actpipe cluster``'s output). Decisions where the dashboard's layout has no place:

* ``k`` is the number of clusters of every layer when all layers of all sets have the
  same; otherwise the largest, and each set's entry under ``sets`` gives its counts per
  layer. Cluster ids are ``0 .. n_clusters - 1`` of their layer.
* Examples dropped at a layer (``nonfinite: drop``) keep their path, with cluster ``-1``
  at that layer (``dropped_cluster`` in ``metadata.json``; counts per set and layer under
  ``sets``).
* Keys of ``paths.json`` are actpipe's example ids (stimulus ids, or
  ``{stimulus_id}#{replicate}`` with ``replicates: each``), in stimulus order, unless
  ``example_key`` gives a template (fields ``{id}``, ``{index}``, ``{stimulus}``,
  ``{replicate}``); then ``example_ids.json`` maps each key back to its example id.
* Centroids are those of actpipe's clustering: in the space the layer was clustered in
  (``centroid_space`` per set and layer: replicate mean, standardized, reduced, ...).
  Values are float64 written in the shortest form that reads back exactly. Centroids that
  ``centroids.json`` only points to are read from ``centroids.h5``.
* ``metadata.json`` also records which parameter set each ``set_NN`` holds (``sets``), the
  model, the stimulus set and the producer; the dashboard ignores keys it does not know.

Output is atomic: a new ``OUT_DIR`` is written under a temporary name and renamed; into an
existing one (for instance the backend's folder that also holds the layer folders of
``.npy`` files) the sets and ``metadata.json`` are written under temporary names first and
moved into place last. ``metadata.json``, ``example_ids.json`` and every ``set_*`` folder of
``OUT_DIR`` belong to the export: if any exist, ``force`` is needed, and they are all
replaced; nothing else in ``OUT_DIR`` is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import h5py
import numpy as np

from ._io import temporary_path
from ._version import __version__
from .errors import FormatError
from .results import CLUSTER_OUTPUTS
from .storage.npy_layout import METADATA_FILE, SET_FOLDER

PathLike = str | os.PathLike[str]

DASHBOARD_LAYOUT = "gatormind"
PATHS = "paths.json"
CENTROIDS = "centroids.json"
EXAMPLE_IDS = "example_ids.json"
DEFAULT_EXAMPLE_KEY = "{id}"
KEY_FIELDS = ("id", "index", "stimulus", "replicate")
DROPPED = -1
_BLOCK_VALUES = 1 << 20
"""Centroid values read from ``centroids.h5`` at a time."""


@dataclass(frozen=True)
class ClusterFolder:
    """What the export needs from one parameter set's folder."""

    path: Path
    metadata: dict[str, Any]
    layers: list[str]
    paths: dict[str, list[int]]
    centroids: dict[str, Any]

    @property
    def exposures(self) -> bool:
        """Whether examples are single exposures (``replicates: each``)."""
        return self.metadata.get("params", {}).get("replicates") == "each"

    def n_clusters(self, layer: str) -> int:
        entry = self.centroids[layer]
        if "k" in entry:
            return int(entry["k"])
        return len(entry["centroids"])


def _read_json(path: Path, what: str) -> Any:
    if not path.parent.is_dir():
        raise FormatError(f"{path.parent}: no such folder (a parameter set's folder expected)")
    if not path.is_file():
        folder = path.parent
        candidates = sorted(
            p.parent.name for p in folder.glob(f"*/{CLUSTER_OUTPUTS['paths']}") if p.is_file()
        )
        hint = (
            f"; it holds parameter set folders: pass one or more of {', '.join(candidates)}"
            if candidates
            else "; expected a parameter set's folder results/clusters/{set}/{model}/"
            "{parameter_set}/ (or actpipe cluster's output) holding paths.json, "
            "centroids.json, centroids.h5 and metadata.json"
        )
        raise FormatError(f"{folder}: no {path.name} ({what}){hint}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormatError(f"{path}: not readable as JSON ({exc})") from exc


def read_cluster_folder(path: PathLike) -> ClusterFolder:
    """Read and check one parameter set's ``paths.json``, ``centroids.json``, ``metadata.json``."""
    path = Path(path)
    metadata = _read_json(path / CLUSTER_OUTPUTS["metadata"], "the clustering's metadata")
    paths = _read_json(path / CLUSTER_OUTPUTS["paths"], "the cluster paths")
    centroids = _read_json(path / CLUSTER_OUTPUTS["centroids"], "the centroids")
    layers = metadata.get("layers")
    if not isinstance(layers, list) or not layers:
        raise FormatError(f"{path / CLUSTER_OUTPUTS['metadata']}: no 'layers' list")
    if paths.get("layers") != layers:
        raise FormatError(
            f"{path}: paths.json's layers {paths.get('layers')} differ from metadata.json's "
            f"{layers}; the folder mixes two runs: rerun its aggregation"
        )
    missing = [layer for layer in layers if layer not in centroids]
    if missing:
        raise FormatError(f"{path / CLUSTER_OUTPUTS['centroids']}: no centroids of {missing}")
    if not isinstance(paths.get("paths"), dict):
        raise FormatError(f"{path / CLUSTER_OUTPUTS['paths']}: no 'paths' object")
    folder = ClusterFolder(path, metadata, layers, paths["paths"], centroids)
    if folder.paths:
        matrix = np.asarray(list(folder.paths.values()), dtype=np.int64)
        if matrix.ndim != 2 or matrix.shape[1] != len(layers):
            raise FormatError(f"{path / CLUSTER_OUTPUTS['paths']}: paths of unequal lengths")
        for i, layer in enumerate(layers):
            top = int(matrix[:, i].max())
            if top >= folder.n_clusters(layer) or int(matrix[:, i].min()) < DROPPED:
                raise FormatError(
                    f"{path}: layer {layer!r} has {folder.n_clusters(layer)} centroids but "
                    f"paths.json uses cluster {top}; rerun its aggregation"
                )
    return folder


def _check_same_examples(folders: list[ClusterFolder]) -> None:
    first = folders[0]
    for other in folders[1:]:
        for key in ("model", "stimulus_set"):
            a, b = first.metadata.get(key), other.metadata.get(key)
            if a is not None and b is not None and a != b:
                raise FormatError(
                    f"{other.path}: {key} {b!r}, but {first.path} has {a!r}; the sets of one "
                    "dashboard folder must cluster the same model on the same stimuli (export "
                    "the others to another folder)"
                )
        if other.layers != first.layers:
            raise FormatError(
                f"{other.path}: layers {other.layers} differ from {first.layers} of "
                f"{first.path}; the dashboard's metadata.json has one layer list"
            )
        if list(other.paths) != list(first.paths):
            ours, theirs = set(first.paths), set(other.paths)
            detail = (
                f"{len(theirs - ours)} example(s) not in {first.path}, {len(ours - theirs)} missing"
                if ours != theirs
                else "the same examples in another order"
            )
            raise FormatError(
                f"{other.path}: its examples differ from {first.path} ({detail}; another "
                "replicates setting or stimulus set?); export them to separate folders"
            )


def example_keys(folder: ClusterFolder, template: str = DEFAULT_EXAMPLE_KEY) -> list[str]:
    """The ``paths.json`` key of every example, from ``template`` (:data:`KEY_FIELDS`).

    ``{id}`` is the example id, ``{index}`` its position (0-based, stimulus order),
    ``{stimulus}`` and ``{replicate}`` its stimulus id and replicate (``replicate`` only
    when examples are exposures). Standard format specs apply: ``example_{id:0>4}`` turns
    id ``7`` into ``example_0007``. Keys must be unique.
    """
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise FormatError(f"example key template {template!r}: {exc}") from exc
    unknown = sorted(f for f in fields if f not in KEY_FIELDS)
    if unknown or not fields:
        raise FormatError(
            f"example key template {template!r}: use the fields "
            f"{', '.join('{' + f + '}' for f in KEY_FIELDS)} (unknown: {unknown})"
        )
    if "replicate" in fields and not folder.exposures:
        raise FormatError(
            f"example key template {template!r}: {{replicate}} needs examples that are single "
            f"exposures (replicates: each); {folder.path} clustered replicate means"
        )
    keys = []
    for index, eid in enumerate(folder.paths):
        stimulus, replicate = eid.rsplit("#", 1) if folder.exposures else (eid, "")
        values = {
            "id": eid,
            "index": index,
            "stimulus": stimulus,
            "replicate": int(replicate) if replicate else replicate,
        }
        try:
            keys.append(template.format(**values))
        except (ValueError, TypeError) as exc:
            raise FormatError(
                f"example key template {template!r} on example {eid!r}: {exc}"
            ) from exc
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        twice = next(k for k in keys if k in seen or seen.add(k))
        raise FormatError(
            f"example key template {template!r} gives key {twice!r} to two examples; "
            "keys must be unique (include {id} or {index})"
        )
    return keys


def dashboard_metadata(
    folders: Sequence[ClusterFolder], set_names: Sequence[str], template: str
) -> dict[str, Any]:
    """``metadata.json`` of the dashboard folder (see the module docstring)."""
    first = folders[0]
    counts = {f.n_clusters(layer) for f in folders for layer in f.layers}
    sets = {}
    for name, folder in zip(set_names, folders, strict=True):
        meta = folder.metadata
        sets[name] = {
            "source": str(folder.path),
            "parameter_set": meta.get("parameter_set", folder.path.name),
            "method": meta.get("method"),
            "params": meta.get("params"),
            "clusters_per_layer": {layer: folder.n_clusters(layer) for layer in folder.layers},
            "dropped_examples": {
                layer: len(meta.get("dropped", {}).get(layer, [])) for layer in folder.layers
            },
            "centroid_space": {
                layer: folder.centroids[layer].get("space") for layer in folder.layers
            },
        }
    metadata: dict[str, Any] = {
        "num_examples": len(first.paths),
        "layers": list(first.layers),
        "k": max(counts),
        "model": first.metadata.get("model"),
    }
    if first.metadata.get("stimulus_set") is not None:
        metadata["stimulus_set"] = first.metadata["stimulus_set"]
    metadata.update(
        examples=first.metadata.get("examples", "stimuli"),
        example_key=template,
        dropped_cluster=DROPPED,
        sets=sets,
        producer=f"actpipe {__version__}",
    )
    return metadata


def _write_paths(fh: TextIO, keys: Sequence[str], paths: dict[str, list[int]]) -> None:
    """A flat JSON object, one example per line."""
    fh.write("{")
    for i, (key, path) in enumerate(zip(keys, paths.values(), strict=True)):
        fh.write(("\n" if i == 0 else ",\n") + json.dumps(key) + ": " + json.dumps(path))
    fh.write("\n}\n")


def _centroid_rows(folder: ClusterFolder, layer: str) -> Any:
    """The centroids of ``layer`` row by row: inline ones, or read in blocks from the HDF5."""
    entry = folder.centroids[layer]
    if "centroids" in entry:
        yield from entry["centroids"]
        return
    pointer = entry.get("hdf5") or {}
    file = folder.path / pointer.get("file", CLUSTER_OUTPUTS["centroids_h5"])
    dataset = pointer.get("dataset", f"/{layer}/centroids")
    if not file.is_file():
        raise FormatError(
            f"{folder.path}: centroids of {layer!r} point to {file}, which is missing"
        )
    with h5py.File(file, "r") as f:
        if dataset not in f:
            raise FormatError(f"{file}: no dataset {dataset} (centroids of layer {layer!r})")
        dset = f[dataset]
        step = max(1, _BLOCK_VALUES // max(1, int(np.prod(dset.shape[1:]))))
        for start in range(0, dset.shape[0], step):
            yield from dset[start : start + step].astype(np.float64).tolist()


def _write_centroids(fh: TextIO, folder: ClusterFolder) -> None:
    """``{layer: [[...], ...]}``, one centroid per line, never holding more than a block."""
    fh.write("{")
    for i, layer in enumerate(folder.layers):
        fh.write(("\n" if i == 0 else ",\n") + json.dumps(layer) + ": [")
        for j, row in enumerate(_centroid_rows(folder, layer)):
            try:
                text = json.dumps(row, allow_nan=False)
            except ValueError as exc:
                raise FormatError(
                    f"{folder.path}: centroid {j} of layer {layer!r} holds NaN or inf, "
                    "which JSON cannot hold"
                ) from exc
            fh.write(("\n  " if j == 0 else ",\n  ") + text)
        fh.write("\n]")
    fh.write("\n}\n")


def _owned_entries(out_dir: Path) -> list[Path]:
    """What the export writes and replaces in an existing ``out_dir``."""
    if not out_dir.is_dir():
        return []
    owned = [out_dir / METADATA_FILE, out_dir / EXAMPLE_IDS]
    found = [p for p in owned if p.exists()]
    found += sorted(p for p in out_dir.iterdir() if p.is_dir() and SET_FOLDER.fullmatch(p.name))
    return found


def export_dashboard(
    results_dirs: Sequence[PathLike],
    out_dir: PathLike,
    *,
    example_key: str = DEFAULT_EXAMPLE_KEY,
    force: bool = False,
) -> Path:
    """Write the parameter sets of ``results_dirs`` into ``out_dir`` as ``set_01``,
    ``set_02``, ... with the dashboard's ``metadata.json`` (see the module docstring)."""
    if not results_dirs:
        raise FormatError("no parameter set folder to export")
    out_dir = Path(out_dir)
    folders = [read_cluster_folder(p) for p in results_dirs]
    _check_same_examples(folders)
    keys = example_keys(folders[0], example_key)
    set_names = [f"set_{i:02d}" for i in range(1, len(folders) + 1)]
    metadata = dashboard_metadata(folders, set_names, example_key)
    if out_dir.exists() and not out_dir.is_dir():
        raise FormatError(f"{out_dir}: exists and is not a folder")
    if (out_dir / CLUSTER_OUTPUTS["transitions"]).exists() or any(
        out_dir.resolve() == f.path.resolve() for f in folders
    ):
        raise FormatError(
            f"{out_dir}: is a parameter set's folder of actpipe; export into another folder"
        )
    existing = _owned_entries(out_dir)
    if existing and not force:
        raise FileExistsError(
            f"{out_dir} already holds {', '.join(p.name for p in existing)}; pass --force "
            "(force=True) to replace metadata.json and every set_* folder there"
        )
    fresh = not out_dir.exists()
    if fresh:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = temporary_path(out_dir)
    else:
        staging = out_dir / f".export.{os.getpid()}.partial"
    try:
        staging.mkdir()
        for name, folder in zip(set_names, folders, strict=True):
            (staging / name).mkdir()
            with open(staging / name / PATHS, "w", encoding="utf-8") as fh:
                _write_paths(fh, keys, folder.paths)
            with open(staging / name / CENTROIDS, "w", encoding="utf-8") as fh:
                _write_centroids(fh, folder)
        written = [*set_names]
        if example_key != DEFAULT_EXAMPLE_KEY:
            mapping = dict(zip(keys, folders[0].paths, strict=True))
            (staging / EXAMPLE_IDS).write_text(json.dumps(mapping, indent=1) + "\n")
            written.append(EXAMPLE_IDS)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        written.append(METADATA_FILE)
        if fresh:
            os.rename(staging, out_dir)
        else:
            _swap_in(staging, out_dir, written, existing)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _swap_in(staging: Path, out_dir: Path, written: list[str], existing: list[Path]) -> None:
    """Move the old entries aside, the new ones in (``metadata.json`` last), drop the old.

    If a move fails, the new entries are removed and the old ones put back.
    """
    trash = out_dir / f".export.{os.getpid()}.old"
    trash.mkdir()
    moved: list[Path] = []
    installed: list[Path] = []
    try:
        for path in existing:
            os.rename(path, trash / path.name)
            moved.append(path)
        for name in written:
            os.rename(staging / name, out_dir / name)
            installed.append(out_dir / name)
    except BaseException:
        for path in installed:
            with contextlib.suppress(OSError):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        for path in moved:
            with contextlib.suppress(OSError):
                os.rename(trash / path.name, path)
        with contextlib.suppress(OSError):
            trash.rmdir()  # kept, with what could not be put back, if not empty
        raise
    shutil.rmtree(trash, ignore_errors=True)
