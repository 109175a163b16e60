"""Joining files of one model on different stimulus sets or shards into one file.

Inputs are activation or gradient files (per-model, per-set joined files, merged shards) of
the same model made the same way: the same layers (names, shapes, dtypes, reductions, stored
quantities), model block, weights, preprocessing, jitter, seed, replicates and gradient
target. Anything else is refused with the first difference named. The output is an ordinary
per-model file whose rows are the inputs' rows in input order:

* by default each layer is an HDF5 virtual dataset mapping row blocks onto the inputs'
  datasets (no copy; input paths stored relative to the output's folder, so the folder can
  be moved as a whole, and the inputs must stay where they are);
* ``copy=True`` writes the values into the output (a self-contained file).

Stimulus ids, jitter and per-exposure records (gradient files) are small and always copied.
A stimulus id found in two inputs is an error, unless ``namespace=True`` prefixes every id
with its input's stimulus set: ``{stimulus_set}:{stimulus_id}``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._io import atomic_output
from ..errors import FormatError
from .files import choose_model, model_group, model_names, open_file
from .format import (
    FORMAT_VERSION,
    JITTER,
    LAYERS_GROUP,
    LAYOUT,
    PER_EXPOSURE,
    QUANTITIES,
    STIMULUS_IDS,
    StorageOptions,
    chunk_shape,
    decode_value,
    encode_attr,
)
from .writer import producer

PathLike = str | os.PathLike[str]
NAMESPACE_SEPARATOR = ":"

MUST_AGREE = (
    "model",
    "weights",
    "preprocess",
    "jitter",
    "seed",
    "n_replicates",
    "autocast",
    "layer_order",
    "quantities",
    "layers_quantity",
    "target",
)
"""Model attributes that must be equal in every input (when present in any)."""
LAYER_ATTRS_AGREE = ("reduce", "reduce_applied", "quantity", "original_shape")
COPY_BLOCK_BYTES = 64 << 20


@dataclass
class _Layer:
    """One layer dataset of an input: its shape on disk, dtype, attributes and path."""

    shape: tuple[int, ...]
    dtype: np.dtype
    attrs: dict[str, Any]
    raw_attrs: dict[str, Any]
    source: str


@dataclass
class _Input:
    """What is read of one input file before anything is written."""

    path: Path
    data_file: Path
    ids: list[str]
    jitter: np.ndarray | None
    jitter_attrs: dict[str, Any]
    rows: dict[str, np.ndarray]
    groups: dict[str, dict[str, _Layer]]
    links: dict[str, str]
    attrs: dict[str, Any]
    raw_attrs: dict[str, Any]

    @property
    def stimulus_set(self) -> str:
        return str(self.attrs.get("stimulus_set") or self.path.stem)


def _read_input(path: PathLike, model: str | None) -> tuple[str, _Input]:
    path = Path(path)
    with open_file(path) as f:
        name = choose_model(path, model_names(f), model)
        group = model_group(f, path, name)
        if LAYERS_GROUP not in group or STIMULUS_IDS not in group:
            raise FormatError(
                f"{path}: model {name!r} is not in the layer-major layout; convert it with "
                "`actpipe import` first"
            )
        ids = group[STIMULUS_IDS].asstr()[()].tolist()
        n = len(ids)
        links: dict[str, str] = {}
        groups: dict[str, dict[str, _Layer]] = {}
        for member in (LAYERS_GROUP, *QUANTITIES):
            link = group.get(member, getlink=True)
            if isinstance(link, h5py.SoftLink):
                links[member] = link.path
                continue
            if member not in group:
                continue
            layers: dict[str, _Layer] = {}

            def visit(rel: str, obj: Any, layers: dict[str, _Layer] = layers) -> None:
                if isinstance(obj, h5py.Dataset):
                    attrs = {k: decode_value(v) for k, v in obj.attrs.items()}
                    layers[rel] = _Layer(obj.shape, obj.dtype, attrs, dict(obj.attrs), obj.name)

            group[member].visititems(visit)
            groups[member] = layers
        return name, _Input(
            path=path,
            data_file=Path(group.file.filename).resolve(),
            ids=ids,
            jitter=group[JITTER][:n] if JITTER in group else None,
            jitter_attrs=dict(group[JITTER].attrs) if JITTER in group else {},
            rows={key: group[key][:n] for key in PER_EXPOSURE if key in group},
            groups=groups,
            links=links,
            attrs={k: decode_value(v) for k, v in group.attrs.items()},
            raw_attrs=dict(group.attrs),
        )


def _comparable(key: str, value: Any) -> Any:
    """The part of an attribute that must agree (paths and batch sizes may differ)."""
    if key == "model" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "batch_size"}
    if key == "weights" and isinstance(value, dict):
        for digest in ("state_dict_sha256", "sha256"):
            if digest in value:
                return {digest: value[digest], "kind": value.get("kind")}
        return {k: v for k, v in value.items() if k != "path"}
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _first_difference(a: Any, b: Any, prefix: str) -> str:
    """``key: A vs B`` for the first nested entry where ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key, "<absent>") != b.get(key, "<absent>"):
                return _first_difference(
                    a.get(key, "<absent>"), b.get(key, "<absent>"), f"{prefix}.{key}"
                )
    return f"{prefix}: {_describe(a)} vs {_describe(b)}"


def check_mergeable(inputs: Sequence[_Input], model: str) -> None:
    """Refuse inputs made differently; the message names both files and the difference."""
    first = inputs[0]
    for other in inputs[1:]:
        where = f"{other.path} cannot be merged with {first.path} (model {model!r})"
        for key in MUST_AGREE:
            a = _comparable(key, first.attrs.get(key, "<absent>"))
            b = _comparable(key, other.attrs.get(key, "<absent>"))
            if a != b:
                raise FormatError(f"{where}: they differ in {_first_difference(a, b, key)}")
        if sorted(first.groups) != sorted(other.groups) or first.links != other.links:
            raise FormatError(
                f"{where}: they store different quantities ({sorted(first.groups)} vs "
                f"{sorted(other.groups)})"
            )
        for member, layers in first.groups.items():
            theirs = other.groups[member]
            if sorted(layers) != sorted(theirs):
                missing = sorted(set(layers) - set(theirs))
                extra = sorted(set(theirs) - set(layers))
                raise FormatError(
                    f"{where}: their layers differ (/{member}: missing {missing}, extra {extra})"
                )
            for name, mine in layers.items():
                other_layer = theirs[name]
                if mine.shape[1:] != other_layer.shape[1:] or mine.dtype != other_layer.dtype:
                    raise FormatError(
                        f"{where}: layer {name!r} (/{member}) has shape (*, "
                        f"{', '.join(map(str, other_layer.shape[1:]))}) {other_layer.dtype} vs "
                        f"(*, {', '.join(map(str, mine.shape[1:]))}) {mine.dtype}"
                    )
                for key in LAYER_ATTRS_AGREE:
                    a = _comparable(key, mine.attrs.get(key, "<absent>"))
                    b = _comparable(key, other_layer.attrs.get(key, "<absent>"))
                    if a != b:
                        raise FormatError(
                            f"{where}: layer {name!r} (/{member}) differs in {key}: "
                            f"{_describe(a)} vs {_describe(b)}"
                        )
        if sorted(first.rows) != sorted(other.rows) or (first.jitter is None) != (
            other.jitter is None
        ):
            raise FormatError(f"{where}: they hold different per-exposure records")


def _merged_ids(inputs: Sequence[_Input], namespace: bool) -> list[str]:
    if namespace:
        ids = [
            f"{item.stimulus_set}{NAMESPACE_SEPARATOR}{sid}" for item in inputs for sid in item.ids
        ]
    else:
        ids = [sid for item in inputs for sid in item.ids]
    if len(set(ids)) == len(ids):
        return ids
    owner: dict[str, Path] = {}
    for item in inputs:
        for sid in item.ids:
            key = f"{item.stimulus_set}{NAMESPACE_SEPARATOR}{sid}" if namespace else sid
            if key in owner:
                hint = (
                    "the inputs share a stimulus set name; give each input once"
                    if namespace
                    else "merge with --namespace to prefix every id with its stimulus set"
                )
                raise FormatError(
                    f"stimulus id {key!r} is in both {owner[key]} and {item.path}; {hint}"
                )
            owner[key] = item.path
    raise AssertionError("unreachable")


def merge_files(
    inputs: Sequence[PathLike],
    output: PathLike,
    model: str | None = None,
    *,
    copy: bool = False,
    namespace: bool = False,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Join ``model`` of every input into ``output`` (see the module docstring).

    ``model`` may be omitted when every input holds one model. ``attrs`` are added to the
    output's model attributes (``shards`` for merged shards). Returns the output path.
    """
    if not inputs:
        raise ValueError("merge: no input files")
    output = Path(output)
    read = [_read_input(path, model) for path in inputs]
    names = {name for name, _ in read}
    if len(names) > 1:
        raise FormatError(
            f"the inputs hold different models ({', '.join(sorted(names))}); merge one model "
            "at a time (--model)"
        )
    model = read[0][0]
    items = [item for _, item in read]
    check_mergeable(items, model)
    ids = _merged_ids(items, namespace)
    first = items[0]
    base = output.parent.resolve()
    starts = np.cumsum([0] + [len(item.ids) for item in items])
    storage = StorageOptions.from_config(
        {
            k: v
            for k, v in (first.attrs.get("storage") or {}).items()
            if k in StorageOptions.__dataclass_fields__
        }
    )
    with atomic_output(output) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["layout"] = LAYOUT
        f.attrs["producer"] = producer()
        group = f.create_group(model)
        for member, layers in first.groups.items():
            container = group.create_group(member)
            for name, layer in layers.items():
                n_rep, dim = layer.shape[1:]
                shape = (len(ids), n_rep, dim)
                if copy:
                    dset = _copy_layer(container, name, shape, layer.dtype, storage, items, member)
                else:
                    dset = _virtual_layer(container, name, shape, layer.dtype, items, member, base)
                dset.attrs.update(layer.raw_attrs)
        for member, target in first.links.items():
            group[member] = h5py.SoftLink(target)
        group.create_dataset(
            STIMULUS_IDS, data=np.asarray(ids, dtype=object), dtype=h5py.string_dtype("utf-8")
        )
        if first.jitter is not None:
            group.create_dataset(JITTER, data=np.concatenate([i.jitter for i in items]))
            group[JITTER].attrs.update(first.jitter_attrs)
        for key in first.rows:
            group.create_dataset(key, data=np.concatenate([i.rows[key] for i in items]))
        for key, value in first.raw_attrs.items():
            group.attrs[key] = value
        sets = list(dict.fromkeys(item.stimulus_set for item in items))
        skipped = [sid for item in items for sid in item.attrs.get("skipped_ids") or []]
        merged_from = [
            {
                "path": os.path.relpath(item.path.resolve(), base),
                "stimulus_set": item.stimulus_set,
                "rows": [int(starts[i]), int(starts[i + 1])],
            }
            for i, item in enumerate(items)
        ]
        extra = {
            "n_stimuli": len(ids),
            "skipped_ids": skipped,
            "stimulus_set": sets[0] if len(sets) == 1 else "+".join(sets),
            "merged_from": merged_from,
            "merged_copy": bool(copy),
            **(attrs or {}),
        }
        if namespace:
            extra["id_namespace"] = f"{{stimulus_set}}{NAMESPACE_SEPARATOR}{{stimulus_id}}"
        for key, value in extra.items():
            group.attrs[key] = encode_attr(value)
    return output


def _virtual_layer(
    container: h5py.Group,
    name: str,
    shape: tuple[int, int, int],
    dtype: np.dtype,
    items: Sequence[_Input],
    member: str,
    base: Path,
) -> h5py.Dataset:
    layout = h5py.VirtualLayout(shape=shape, dtype=dtype, maxshape=shape)
    offset = 0
    for item in items:
        rows = len(item.ids)
        layer = item.groups[member][name]
        target = os.path.relpath(item.data_file, base)
        source = h5py.VirtualSource(target, layer.source, shape=layer.shape)
        if rows:
            layout[offset : offset + rows] = source[:rows]
        offset += rows
    return container.create_virtual_dataset(name, layout, fillvalue=np.nan)


def _copy_layer(
    container: h5py.Group,
    name: str,
    shape: tuple[int, int, int],
    dtype: np.dtype,
    storage: StorageOptions,
    items: Sequence[_Input],
    member: str,
) -> h5py.Dataset:
    n, n_rep, dim = shape
    chunks = chunk_shape(n, n_rep, dim, dtype.itemsize, storage.chunk_bytes)
    dset = container.create_dataset(
        name,
        shape=shape,
        maxshape=(None, n_rep, dim),
        dtype=dtype,
        chunks=chunks,
        **storage.dataset_kwargs(),
    )
    step = max(1, COPY_BLOCK_BYTES // max(1, n_rep * dim * dtype.itemsize))
    offset = 0
    for item in items:
        with h5py.File(item.data_file, "r") as f:
            source = f[item.groups[member][name].source]
            for start in range(0, len(item.ids), step):
                stop = min(len(item.ids), start + step)
                dset[offset + start : offset + stop] = source[start:stop]
        offset += len(item.ids)
    return dset
