"""What is known of a model and its layers without reading layer data: stimulus ids, layers
(shape, dtype, chunks, attributes) and provenance, for both layouts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import ActivationKeyError, FormatError
from ..names import layer_key, no_such
from .files import (
    PathLike,
    check_version,
    dataset_names,
    group_layout,
    model_group,
    open_file,
    read_ids,
)
from .format import LAYERS_GROUP, LAYOUT, decode_value, stored_name

IdSelection = Sequence[str] | np.ndarray
"""Stimulus ids selecting rows, in the order wanted."""


def as_rows(array: np.ndarray) -> np.ndarray:
    """A per-stimulus dataset as ``(n_replicates, feature_dim)`` (1-D: one replicate)."""
    if array.ndim == 1:
        return array[None, :]
    if array.ndim > 2:
        return array.reshape(array.shape[0], -1)
    return array


def row_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 1:
        return (1, shape[0])
    return (shape[0], int(np.prod(shape[1:], dtype=np.int64)))


def layer_datasets(
    container: h5py.Group, order: Any = None, attrs_by_name: dict[str, Any] | None = None
) -> dict[str, tuple[str, h5py.Dataset]]:
    """The layer datasets below ``container`` as ``{layer name: (key, dataset)}``, in the
    recorded ``order`` (a list of names) and then in file order.

    A dataset's layer name is its ``name`` attribute (or the one ``attrs_by_name`` records,
    for the older per-stimulus layout), else the name its key encodes, else the key: so files
    of every version and of other writers read.
    """
    found: dict[str, tuple[str, h5py.Dataset]] = {}
    for key in dataset_names(container):
        dset = container[key]
        name = stored_name(key, dset.attrs)
        if attrs_by_name is not None and name not in attrs_by_name:
            recorded = [n for n, a in attrs_by_name.items() if layer_key(n) == key]
            name = recorded[0] if recorded else name
        found.setdefault(name, (key, dset))
    return {name: found[name] for name in ordered(list(found), order)}


def ordered(names: list[str], order: Any) -> list[str]:
    """``names`` in the recorded ``order`` (a list), unrecorded ones after in file order."""
    present = set(names)
    first = [n for n in order if n in present] if isinstance(order, list) else []
    chosen = set(first)
    return first + [n for n in names if n not in chosen]


@dataclass
class StoredLayer:
    """What is known of a layer without reading it.

    ``shape[0]`` is the number of stimulus ids. A layer-major dataset may hold more rows
    (``rows_on_disk``) after an interrupted append; those rows are not part of the file.
    ``key`` is where the data is (``layers/{key}``, or ``{stimulus}/{key}`` in the older
    layout); readers take the layer's name.
    """

    shape: tuple[int, int, int]
    dtype: np.dtype
    chunks: tuple[int, ...] | None
    attrs: dict[str, Any]
    rows_on_disk: int
    key: str = ""
    """The dataset's name: the layer key of the layer's name (see :mod:`actpipe.names`)."""


@dataclass
class ModelInfo:
    """Metadata of one model, read once: ids, layers, shapes, provenance, where it lives."""

    name: str
    path: Path
    source: Path
    group: str
    layout: str
    format_version: int
    stimulus_ids: list[str]
    layers: dict[str, StoredLayer]
    attrs: dict[str, Any]
    _rows: dict[str, int] | None = field(default=None, repr=False)

    @classmethod
    def read(cls, path: PathLike, model: str) -> ModelInfo:
        """Read the metadata of ``model`` in ``path``."""
        with open_file(path) as f:
            return cls.from_group(Path(path), model, model_group(f, path, model))

    @classmethod
    def from_group(cls, path: Path, model: str, group: h5py.Group) -> ModelInfo:
        source = Path(group.file.filename).resolve()
        layout = group_layout(group)
        version = check_version(group.file.attrs, source)
        ids = read_ids(group, layout)
        attrs = {key: decode_value(value) for key, value in group.attrs.items()}
        layers: dict[str, StoredLayer] = {}
        if layout == LAYOUT:
            if LAYERS_GROUP not in group:
                raise FormatError(f"{source}: {group.name} has no {LAYERS_GROUP} group")
            stored = layer_datasets(group[LAYERS_GROUP], attrs.get("layer_order"))
            for name, (key, dset) in stored.items():
                if dset.ndim != 3:
                    raise FormatError(
                        f"{source}: layer {name!r} of {group.name} has shape {dset.shape}; "
                        "expected (n_stimuli, n_replicates, feature_dim)"
                    )
                layers[name] = StoredLayer(
                    (len(ids), dset.shape[1], dset.shape[2]),
                    dset.dtype,
                    dset.chunks,
                    {k: decode_value(v) for k, v in dset.attrs.items()},
                    dset.shape[0],
                    key,
                )
        elif ids:
            layer_attrs = attrs.get("layer_attrs")
            layer_attrs = layer_attrs if isinstance(layer_attrs, dict) else {}
            stored = layer_datasets(group[ids[0]], attrs.get("layer_order"), layer_attrs)
            for name, (key, dset) in stored.items():
                layers[name] = StoredLayer(
                    (len(ids), *row_shape(dset.shape)),
                    dset.dtype,
                    None,
                    dict(layer_attrs.get(name, {})),
                    len(ids),
                    key,
                )
        return cls(model, path, source, group.name, layout, version, ids, layers, attrs)

    @property
    def where(self) -> str:
        """How messages name this model: ``"{file}: model '{name}'"``."""
        return f"{self.path}: model {self.name!r}"

    @property
    def rows(self) -> dict[str, int]:
        """Row of each stimulus id."""
        if self._rows is None:
            self._rows = {sid: i for i, sid in enumerate(self.stimulus_ids)}
        return self._rows

    def row_of(self, stimulus_id: str) -> int:
        row = self.rows.get(stimulus_id)
        if row is None:
            raise ActivationKeyError(
                no_such("stimulus", stimulus_id, self.stimulus_ids, self.where)
            )
        return row

    def rows_of(self, ids: IdSelection) -> np.ndarray:
        """Rows of ``ids`` (in that order); unknown ids are listed together in one error."""
        if isinstance(ids, str):
            raise TypeError("give a list of stimulus ids, not one string")
        ids = list(ids)
        table = self.rows
        rows = np.fromiter((table.get(sid, -1) for sid in ids), dtype=np.int64, count=len(ids))
        if (rows < 0).any():
            missing = [sid for sid, r in zip(ids, rows, strict=True) if r < 0]
            raise ActivationKeyError(no_such("stimulus", missing, self.stimulus_ids, self.where))
        return rows

    def layer(self, name: str) -> StoredLayer:
        """The layer's metadata; an error naming the file, model and close names if absent."""
        info = self.layers.get(name)
        if info is None:
            raise ActivationKeyError(no_such("layer", name, list(self.layers), self.where))
        if info.rows_on_disk < info.shape[0]:
            raise FormatError(
                f"{self.source}: model {self.name!r}, layer {name!r} has {info.rows_on_disk} "
                f"rows for {info.shape[0]} stimulus ids; the file is damaged (run "
                "`actpipe validate` on it and extract this model again)"
            )
        return info
