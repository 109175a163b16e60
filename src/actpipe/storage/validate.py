"""Structural checks of an activation file: what ``actpipe validate`` reports.

Errors make a file unfit for the workflow (a layer without one row per stimulus, repeated
ids, NaN or inf values, missing attributes, a broken link); warnings are worth knowing
(the older layout, leftovers of an interrupted append).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import FormatError
from ..names import layer_key
from .blocks import READ_BLOCK_BYTES
from .files import (
    check_file,
    check_version,
    dataset_names,
    group_layout,
    model_group,
    model_names,
    open_h5,
)
from .format import (
    JITTER,
    JITTER_FIELDS,
    LAYERS_GROUP,
    PER_STIMULUS,
    STIMULUS_IDS,
    decode_attr,
)
from .metadata import layer_datasets

PathLike = str | os.PathLike[str]

ROOT_ATTRS = ("format_version", "layout", "producer")
MODEL_ATTRS = ("layer_order", "n_stimuli", "n_replicates", "storage")
PROVENANCE_ATTRS = ("model", "weights", "preprocess", "jitter", "seed", "versions")
"""Required of extracted models; a model converted by ``actpipe import`` may lack them."""
LAYER_ATTRS = ("original_shape", "feature_dim")


@dataclass(frozen=True)
class Problem:
    """One finding: ``severity`` is ``error`` or ``warning``; ``where`` names the object."""

    severity: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


class _Report:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def error(self, where: str, message: str) -> None:
        self.problems.append(Problem("error", f"{self.path}:{where}", message))

    def warning(self, where: str, message: str) -> None:
        self.problems.append(Problem("warning", f"{self.path}:{where}", message))


def validate_file(path: PathLike, *, block_bytes: int = READ_BLOCK_BYTES) -> list[Problem]:
    """Every problem found in ``path`` (empty: the file is sound). Values are read in blocks."""
    report = _Report(Path(path))
    try:
        path = check_file(path)
        f = open_h5(path)
    except (OSError, FormatError) as exc:
        report.error("/", str(exc))
        return report.problems
    with f:
        try:
            version = check_version(f.attrs, path)
        except FormatError as exc:
            report.error("/", str(exc))
            return report.problems
        layout = decode_attr(f.attrs.get("layout", ""))
        if version == 0:
            report.warning(
                "/",
                "older per-stimulus layout without format_version; convert it with "
                "`actpipe import` to use it in a workflow",
            )
        else:
            for key in ROOT_ATTRS:
                if key not in f.attrs:
                    report.error("/", f"attribute {key!r} missing")
        for name in f.keys():
            if name.startswith("."):
                report.warning(
                    f"/{name}",
                    "left by an interrupted append (readers ignore it; the next "
                    "append of that model replaces it)",
                )
        names = model_names(f)
        if not names:
            report.error("/", "no model in the file")
        recorded = decode_attr(f.attrs.get("models", "[]"))
        if decode_attr(f.attrs.get("kind", "")) == "joined" and isinstance(recorded, list):
            for name in recorded:
                if name not in names:
                    report.error("/", f"attribute 'models' lists {name!r}, which has no link")
        for name in names:
            where = f"/{name}"
            try:
                group = model_group(f, path, name)
            except (FormatError, KeyError) as exc:
                report.error(where, str(exc))
                continue
            if layout == PER_STIMULUS or group_layout(group) == PER_STIMULUS:
                _check_per_stimulus(report, group, where)
            else:
                _check_layer_major(report, group, where, block_bytes)
    return report.problems


def _nonfinite(report: _Report, where: str, ids: list[str], blocks: Any) -> None:
    """Report the count of NaN/inf values over ``blocks`` of (first row, array)."""
    count, first = 0, None
    for start, block in blocks:
        if block.dtype.kind != "f":
            continue
        bad = ~np.isfinite(block)
        if bad.any():
            count += int(bad.sum())
            if first is None:
                first = start + int(np.flatnonzero(bad.reshape(len(block), -1).any(axis=1))[0])
    if count:
        sid = ids[first] if first is not None and first < len(ids) else "?"
        report.error(where, f"{count} NaN or inf value(s), first in stimulus {sid!r}")


def _check_layer_major(report: _Report, group: h5py.Group, where: str, block_bytes: int) -> None:
    attrs = {key: decode_attr(value) for key, value in group.attrs.items()}
    if STIMULUS_IDS not in group:
        report.error(where, f"no {STIMULUS_IDS} dataset")
        return
    ids_dset = group[STIMULUS_IDS]
    if ids_dset.ndim != 1:
        report.error(f"{where}/{STIMULUS_IDS}", f"shape {ids_dset.shape}, expected 1-D")
        return
    ids = ids_dset.asstr()[()].tolist()
    n = len(ids)
    seen: set[str] = set()
    repeated = sorted({sid for sid in ids if sid in seen or seen.add(sid)})
    if repeated:
        report.error(
            f"{where}/{STIMULUS_IDS}",
            f"{len(repeated)} id(s) repeated: {', '.join(map(repr, repeated[:10]))}",
        )
    if "" in seen:
        report.error(f"{where}/{STIMULUS_IDS}", "an empty stimulus id")
    required = MODEL_ATTRS + (() if "imported_from" in attrs else PROVENANCE_ATTRS)
    for key in required:
        if key not in attrs:
            report.error(where, f"attribute {key!r} missing")
    if "n_stimuli" in attrs and attrs["n_stimuli"] != n:
        report.error(where, f"attribute n_stimuli = {attrs['n_stimuli']} but {n} stimulus ids")
    if LAYERS_GROUP not in group:
        report.error(where, f"no {LAYERS_GROUP} group")
        return
    stored = layer_datasets(group[LAYERS_GROUP], attrs.get("layer_order"))
    layers = list(stored)
    if not layers:
        report.error(f"{where}/{LAYERS_GROUP}", "no layer")
    order = attrs.get("layer_order")
    if isinstance(order, list) and sorted(order) != sorted(layers):
        report.error(where, f"attribute layer_order {order} does not match the layers {layers}")
    version = int(group.file.attrs.get("format_version", 0))
    replicates = attrs.get("n_replicates")
    for name, (key, dset) in stored.items():
        lwhere = f"{where}/{LAYERS_GROUP}/{key}"
        if version >= 2 and layer_key(name) != key:
            report.error(
                lwhere,
                f"layer {name!r} is stored under {key!r}, not under its layer key "
                f"{layer_key(name)!r} (a layer outside its place: readers of other tools "
                "will not find it)",
            )
        if dset.ndim != 3:
            report.error(
                lwhere, f"shape {dset.shape}; expected (n_stimuli, n_replicates, features)"
            )
            continue
        rows, n_rep, dim = dset.shape
        if rows < n:
            report.error(lwhere, f"{rows} rows for {n} stimulus ids; one row per stimulus needed")
            continue
        if rows > n:
            report.error(
                lwhere,
                f"{rows - n} row(s) past the last stimulus id (an interrupted append; "
                "readers ignore them, and appending to this model again overwrites them)",
            )
        if replicates is None:
            replicates = n_rep
        elif n_rep != replicates:
            report.error(lwhere, f"{n_rep} replicates; the model has {replicates}")
        for key in LAYER_ATTRS:
            if key not in dset.attrs:
                report.error(lwhere, f"attribute {key!r} missing")
        if "feature_dim" in dset.attrs and int(dset.attrs["feature_dim"]) != dim:
            report.error(
                lwhere, f"attribute feature_dim = {dset.attrs['feature_dim']}, shape {dim}"
            )
        step = max(1, block_bytes // max(1, n_rep * dim * dset.dtype.itemsize))
        try:
            _nonfinite(
                report, lwhere, ids, ((a, dset[a : min(n, a + step)]) for a in range(0, n, step))
            )
        except OSError as exc:
            report.error(lwhere, f"cannot be read ({exc}); a shard or source file is missing?")
    if JITTER in group:
        shape = group[JITTER].shape
        if (
            len(shape) != 3
            or shape[0] < n
            or shape[2] != len(JITTER_FIELDS)
            or (replicates is not None and shape[1] != replicates)
        ):
            report.error(
                f"{where}/{JITTER}",
                f"shape {shape}, expected ({n}, {replicates}, {len(JITTER_FIELDS)})",
            )
    elif "imported_from" not in attrs:
        report.error(where, f"no {JITTER} dataset")


def _check_per_stimulus(report: _Report, group: h5py.Group, where: str) -> None:
    ids = list(group.keys())
    if not ids:
        report.error(where, "no stimulus")
        return
    expected: dict[str, tuple[int, ...]] | None = None
    first = ids[0]
    for sid in ids:
        swhere = f"{where}/{sid}"
        item = group[sid]
        if not isinstance(item, h5py.Group):
            report.error(swhere, "a dataset where a stimulus group was expected")
            continue
        shapes = {name: item[name].shape for name in dataset_names(item)}
        if expected is None:
            expected = shapes
            replicates = {s[0] for s in shapes.values() if len(s) > 1}
            if len(replicates) > 1:
                report.error(swhere, f"layers with different replicate counts {sorted(replicates)}")
        elif shapes != expected:
            missing = sorted(set(expected) - set(shapes))
            extra = sorted(set(shapes) - set(expected))
            other = sorted(k for k in set(shapes) & set(expected) if shapes[k] != expected[k])
            detail = "; ".join(
                part
                for part in (
                    f"missing layers {missing}" if missing else "",
                    f"extra layers {extra}" if extra else "",
                    f"shapes differ for {other}" if other else "",
                )
                if part
            )
            report.error(swhere, f"differs from {first!r}: {detail}")
        for name in shapes:
            _nonfinite(report, f"{swhere}/{name}", [sid], [(0, item[name][()][None])])


def format_problems(problems: list[Problem]) -> str:
    """One line per problem, errors first."""
    ordered = sorted(problems, key=lambda p: p.severity != "error")
    return "\n".join(str(p) for p in ordered)
