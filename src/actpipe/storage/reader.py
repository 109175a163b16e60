"""Reading activation files: a lazy nested mapping and layer-major views.

Works on a per-model file, a per-set file joining models through external links, and a file
in the older per-stimulus layout ``/{model}/{stimulus_id}/{layer}``. Two ways in:

* nested, as in the older tools: ``acts = load_lazy_activations(path)`` then
  ``acts[model][stimulus_id][layer]`` is an ``(n_replicates, feature_dim)`` array, read when
  indexed; keys, iteration and ``len`` work like a dict at every level;
* layer-major, for analysis: ``acts[model].layer(name)`` is a :class:`LayerView` of shape
  ``(n_stimuli, n_replicates, feature_dim)``; ``.read()``, ``[ids]``, ``.replicate_mean()``
  and ``.blocks()`` read it whole, by stimulus ids, averaged over replicates, or streamed in
  blocks of bounded size. :func:`read_layer` and :func:`iter_layer` do the same from a path.

Metadata (models, ids, layers, shapes, attributes) is read when a model is first indexed.
Data files are opened read-only on the first read and stay open until :meth:`close` (or the
end of a ``with`` block).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._io import did_you_mean
from .format import (
    FORMAT_VERSION,
    JITTER,
    LAYERS_GROUP,
    LAYOUT,
    PER_STIMULUS,
    STIMULUS_IDS,
    FormatError,
    decode_attr,
)

DEFAULT_CACHE_BYTES = 10 * 1024 * 1024
"""Arrays smaller than this are kept after their first read (the older tools' 10 MB)."""
DEFAULT_CACHE_LIMIT = 1 << 30
"""At most this many bytes are cached per opened file (least recently used go first)."""
READ_BLOCK_BYTES = 64 << 20
"""Rows are read in blocks of about this size, so a layer larger than memory can stream."""
CHUNK_CACHE_BYTES = 4 << 20
"""HDF5 chunk cache per open layer: one chunk (about 1 MiB) stays decoded between rows."""
H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")

PathLike = str | os.PathLike[str]
IdSelection = Sequence[str] | np.ndarray


class ActivationKeyError(KeyError):
    """A model, stimulus id or layer that is not in the file; the message lists what is."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _decode(value: Any) -> Any:
    """An attribute as plain Python: JSON text decoded, numpy scalars and arrays as lists."""
    value = decode_attr(value)
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


# --------------------------------------------------------------------------- opening files


def check_file(path: PathLike) -> Path:
    """``path`` as a Path if it is an existing HDF5 file; otherwise an error saying what it is."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir() if p.suffix in H5_SUFFIXES)
        inside = f"HDF5 files in it: {', '.join(found[:10])}" if found else "it holds no .h5 file"
        raise IsADirectoryError(f"{path}: is a directory, not an activation file; {inside}")
    if not path.exists():
        parent = path.parent
        if not parent.is_dir():
            raise FileNotFoundError(f"{path}: no such file (folder {parent} does not exist)")
        siblings = sorted(p.name for p in parent.iterdir() if p.suffix in H5_SUFFIXES)
        hint = did_you_mean(path.name, siblings, "files there") if siblings else "no .h5 file there"
        raise FileNotFoundError(f"{path}: no such file; {hint}")
    if not h5py.is_hdf5(path):
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
        what = "it is empty" if size == 0 else f"{size} bytes starting with {head!r}"
        raise FormatError(f"{path}: not an HDF5 file ({what})")
    return path


def _h5open(path: PathLike) -> h5py.File:
    """Open read-only, with a chunk cache large enough to keep one chunk per layer decoded."""
    try:
        return h5py.File(path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=10007)
    except OSError as exc:
        raise FormatError(
            f"{path}: cannot be opened as HDF5 ({exc}); the file is truncated or damaged "
            "(an interrupted copy?) or still being written"
        ) from exc


def check_version(attrs: Mapping[str, Any], where: PathLike) -> int:
    """The file's ``format_version`` (0 for older per-stimulus files, which have none).

    A version newer than :data:`FORMAT_VERSION` is an error: its layout may differ in ways
    this reader would misread.
    """
    version = attrs.get("format_version")
    layout = decode_attr(attrs.get("layout", ""))
    if version is None:
        if layout == LAYOUT:
            raise FormatError(f"{where}: layout {LAYOUT!r} without a format_version attribute")
        return 0
    version = int(version)
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{where}: format_version {version} is newer than this actpipe reads (up to "
            f"{FORMAT_VERSION}); upgrade actpipe to read it"
        )
    if layout not in ("", LAYOUT, PER_STIMULUS):
        raise FormatError(f"{where}: unknown layout {layout!r} (known: {LAYOUT}, {PER_STIMULUS})")
    return version


@contextlib.contextmanager
def open_file(path: PathLike) -> Iterator[h5py.File]:
    """Open an activation file read-only after checking it; closed when the block ends."""
    path = check_file(path)
    f = _h5open(path)
    try:
        check_version(f.attrs, path)
        yield f
    finally:
        f.close()


def model_names(f: h5py.File) -> list[str]:
    """Models of an open file: a joined file's recorded order first, then the file's order.

    Names with a leading dot (a model being appended) are left out.
    """
    present = [name for name in f.keys() if not name.startswith(".")]
    recorded = decode_attr(f.attrs.get("models", "[]"))
    if isinstance(recorded, list):
        ordered = [name for name in recorded if name in present]
        return ordered + [name for name in present if name not in ordered]
    return present


def choose_model(path: PathLike, names: Sequence[str], model: str | None) -> str:
    """``model`` checked against the file's ``names``; ``None`` picks the file's only model."""
    if model is None:
        if len(names) != 1:
            raise ValueError(
                f"{path}: holds {len(names)} models ({', '.join(names)}); choose one (--model)"
            )
        return names[0]
    if model not in names:
        raise ActivationKeyError(
            f"{path}: no model {model!r}; {did_you_mean(model, names, 'models')}"
        )
    return model


def model_group(f: h5py.File, path: PathLike, model: str) -> h5py.Group:
    """The group of ``model``, following a joined file's external link, with clear errors."""
    names = model_names(f)
    if not isinstance(model, str) or model not in names:
        raise ActivationKeyError(
            f"{path}: no model {model!r}; {did_you_mean(str(model), names, 'models')}"
        )
    link = f.get(model, getlink=True)
    try:
        group = f[model]
    except (KeyError, OSError) as exc:
        if isinstance(link, h5py.ExternalLink):
            target = Path(path).parent / link.filename
            raise FormatError(
                f"{path}: model {model!r} links to {link.filename} ({target}), which cannot be "
                "opened: missing, still being written, or moved without this file"
            ) from exc
        raise FormatError(f"{path}: model {model!r} cannot be opened ({exc})") from exc
    if not isinstance(group, h5py.Group):
        raise FormatError(f"{path}: /{model} is not a group (a model is a group)")
    if group.file.filename != f.filename:
        check_version(group.file.attrs, group.file.filename)
    return group


def group_layout(group: h5py.Group) -> str:
    """``layer-major`` or ``per-stimulus`` for a model group."""
    layout = decode_attr(group.file.attrs.get("layout", ""))
    if layout in (LAYOUT, PER_STIMULUS):
        return layout
    if LAYERS_GROUP in group and STIMULUS_IDS in group:
        return LAYOUT
    return PER_STIMULUS


def read_ids(group: h5py.Group, layout: str) -> list[str]:
    """Stimulus ids of a model group: row order (layer-major) or the group's order."""
    if layout == LAYOUT:
        if STIMULUS_IDS not in group:
            raise FormatError(f"{group.file.filename}: {group.name} has no {STIMULUS_IDS}")
        return group[STIMULUS_IDS].asstr()[()].tolist()
    return list(group.keys())


def _as_rows(array: np.ndarray) -> np.ndarray:
    """A per-stimulus dataset as ``(n_replicates, feature_dim)`` (1-D: one replicate)."""
    if array.ndim == 1:
        return array[None, :]
    if array.ndim > 2:
        return array.reshape(array.shape[0], -1)
    return array


def _row_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 1:
        return (1, shape[0])
    return (shape[0], int(np.prod(shape[1:], dtype=np.int64)))


def dataset_names(group: h5py.Group) -> list[str]:
    """Names of the datasets below ``group`` (nested ones as relative paths)."""
    names: list[str] = []
    group.visititems(
        lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
    )
    return names


def _ordered(names: list[str], order: Any) -> list[str]:
    """``names`` in the recorded ``order`` (a list), unrecorded ones after in file order."""
    present = set(names)
    first = [n for n in order if n in present] if isinstance(order, list) else []
    chosen = set(first)
    return first + [n for n in names if n not in chosen]


# --------------------------------------------------------------------------- model metadata


@dataclass
class LayerInfo:
    """What is known of a layer without reading it.

    ``shape[0]`` is the number of stimulus ids. A layer-major dataset may hold more rows
    (``rows_on_disk``) after an interrupted append; those rows are not part of the file.
    """

    shape: tuple[int, int, int]
    dtype: np.dtype
    chunks: tuple[int, ...] | None
    attrs: dict[str, Any]
    rows_on_disk: int


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
    layers: dict[str, LayerInfo]
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
        attrs = {key: _decode(value) for key, value in group.attrs.items()}
        layers: dict[str, LayerInfo] = {}
        if layout == LAYOUT:
            if LAYERS_GROUP not in group:
                raise FormatError(f"{source}: {group.name} has no {LAYERS_GROUP} group")
            container = group[LAYERS_GROUP]
            for name in _ordered(dataset_names(container), attrs.get("layer_order")):
                dset = container[name]
                if dset.ndim != 3:
                    raise FormatError(
                        f"{source}: layer {name!r} of {group.name} has shape {dset.shape}; "
                        "expected (n_stimuli, n_replicates, feature_dim)"
                    )
                layers[name] = LayerInfo(
                    (len(ids), dset.shape[1], dset.shape[2]),
                    dset.dtype,
                    dset.chunks,
                    {k: _decode(v) for k, v in dset.attrs.items()},
                    dset.shape[0],
                )
        elif ids:
            first = group[ids[0]]
            layer_attrs = attrs.get("layer_attrs")
            layer_attrs = layer_attrs if isinstance(layer_attrs, dict) else {}
            for name in _ordered(dataset_names(first), attrs.get("layer_order")):
                dset = first[name]
                layers[name] = LayerInfo(
                    (len(ids), *_row_shape(dset.shape)),
                    dset.dtype,
                    None,
                    dict(layer_attrs.get(name, {})),
                    len(ids),
                )
        return cls(model, path, source, group.name, layout, version, ids, layers, attrs)

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
                f"{self.path}: model {self.name!r} has no stimulus {stimulus_id!r} "
                f"({len(self.stimulus_ids)} stimuli); "
                f"{did_you_mean(str(stimulus_id), self.stimulus_ids, 'stimulus ids')}"
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
            more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
            hint = did_you_mean(str(missing[0]), self.stimulus_ids, "stimulus ids")
            raise ActivationKeyError(
                f"{self.path}: model {self.name!r} has no stimulus "
                f"{', '.join(map(repr, missing[:10]))}{more}; {hint}"
            )
        return rows

    def layer(self, name: str) -> LayerInfo:
        """The layer's metadata; an error naming the file, model and close names if absent."""
        info = self.layers.get(name)
        if info is None:
            raise ActivationKeyError(
                f"{self.path}: model {self.name!r} has no layer {name!r}; "
                f"{did_you_mean(str(name), list(self.layers), 'layers')}"
            )
        if info.rows_on_disk < info.shape[0]:
            raise FormatError(
                f"{self.source}: model {self.name!r}, layer {name!r} has {info.rows_on_disk} "
                f"rows for {info.shape[0]} stimulus ids; the file is damaged (run "
                "`actpipe validate` on it and extract this model again)"
            )
        return info

    def block_rows(self, layer: str, block_bytes: int = READ_BLOCK_BYTES) -> int:
        """Rows per read block: about ``block_bytes``, a whole number of chunks if possible."""
        info = self.layers[layer]
        row_bytes = max(1, info.shape[1] * info.shape[2] * info.dtype.itemsize)
        rows = max(1, int(block_bytes) // row_bytes)
        chunk_rows = info.chunks[0] if info.chunks else 1
        if rows >= chunk_rows:
            rows -= rows % chunk_rows
        return rows


# --------------------------------------------------------------------------- open files


class _Files:
    """The open read-only handles of one reader: one per data file, one per layer dataset."""

    def __init__(self) -> None:
        self.files: dict[Path, h5py.File] = {}
        self.datasets: dict[tuple[Path, str, str], h5py.Dataset] = {}
        self.lock = threading.RLock()

    def group(self, model: ModelInfo) -> h5py.Group:
        with self.lock:
            f = self.files.get(model.source)
            if f is None or not f.id.valid:
                if not model.source.exists():
                    raise FormatError(
                        f"{model.source}: removed since it was opened (model {model.name!r})"
                    )
                f = self.files[model.source] = _h5open(model.source)
            return f[model.group]

    def dataset(self, model: ModelInfo, layer: str) -> h5py.Dataset:
        """The layer-major dataset of ``layer`` (kept open, so its chunk cache is reused)."""
        key = (model.source, model.group, layer)
        with self.lock:
            dset = self.datasets.get(key)
            if dset is None or not dset.id.valid:
                dset = self.datasets[key] = self.group(model)[LAYERS_GROUP][layer]
            return dset

    def close(self) -> None:
        with self.lock:
            self.datasets.clear()
            for f in self.files.values():
                with contextlib.suppress(Exception):
                    f.close()
            self.files.clear()


def _read_one(model: ModelInfo, files: _Files, layer: str, row: int) -> np.ndarray:
    """Row ``row`` of ``layer`` as ``(n_replicates, feature_dim)``."""
    if model.layout == LAYOUT:
        return files.dataset(model, layer)[row]
    sid = model.stimulus_ids[row]
    stimulus = files.group(model)[sid]
    if layer not in stimulus:
        raise ActivationKeyError(
            f"{model.source}: stimulus {sid!r} of model {model.name!r} has no layer "
            f"{layer!r} (its layers: {', '.join(dataset_names(stimulus)) or 'none'})"
        )
    array = _as_rows(stimulus[layer][()])
    if array.shape != model.layers[layer].shape[1:]:
        raise FormatError(
            f"{model.source}: /{model.name}/{sid}/{layer} has shape {array.shape}, "
            f"other stimuli {model.layers[layer].shape[1:]}"
        )
    return array


def _read_block(model: ModelInfo, files: _Files, layer: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``layer`` as ``(stop - start, n_replicates, feature_dim)``."""
    if model.layout == LAYOUT:
        return files.dataset(model, layer)[start:stop]
    info = model.layers[layer]
    out = np.empty((stop - start, *info.shape[1:]), dtype=info.dtype)
    for i in range(start, stop):
        out[i - start] = _read_one(model, files, layer, i)
    return out


Transform = Callable[[np.ndarray], np.ndarray]


def _empty_result(info: LayerInfo, post: Transform, n_rows: int) -> np.ndarray:
    """The array that ``n_rows`` rows of the layer become after ``post``, to be filled."""
    probe = post(np.zeros((0, *info.shape[1:]), dtype=info.dtype))
    return np.empty((n_rows, *probe.shape[1:]), dtype=probe.dtype)


def read_rows(
    model: ModelInfo,
    files: _Files,
    layer: str,
    rows: np.ndarray | slice,
    post: Transform,
    block_bytes: int = READ_BLOCK_BYTES,
) -> np.ndarray:
    """Rows of ``layer`` (a slice, or row numbers in any order, repeats allowed), ``post``-ed.

    Reads go in blocks of about ``block_bytes`` and ``post`` (dtype conversion, replicate
    mean, a selection on the other axes) is applied block by block, so only the result is
    held whole. Scattered rows are read as runs of nearby rows, each run one read.
    """
    info = model.layer(layer)
    n = info.shape[0]
    step = model.block_rows(layer, block_bytes)
    if isinstance(rows, slice):
        start, stop, stride = rows.indices(n)
        if stride != 1:
            return read_rows(model, files, layer, np.arange(start, stop, stride), post, block_bytes)
        out = _empty_result(info, post, max(0, stop - start))
        for a in range(start, stop, step):
            b = min(stop, a + step)
            out[a - start : b - start] = post(_read_block(model, files, layer, a, b))
        return out
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise IndexError(
            f"model {model.name!r}, layer {layer!r}: rows out of range for {n} stimuli"
        )
    rows = np.where(rows < 0, rows + n, rows)
    unique, inverse = np.unique(rows, return_inverse=True)
    row_bytes = max(1, info.shape[1] * info.shape[2] * info.dtype.itemsize)
    # Reading a few unwanted rows is cheaper than one more read call (layer-major only).
    gap = max(1, (256 << 10) // row_bytes) if model.layout == LAYOUT else 1
    values = _empty_result(info, post, len(unique))
    i = 0
    while i < len(unique):
        j = i
        while (
            j + 1 < len(unique)
            and unique[j + 1] - unique[j] <= gap
            and unique[j + 1] - unique[i] < step
        ):
            j += 1
        lo, hi = int(unique[i]), int(unique[j]) + 1
        if i == j:
            block = _read_one(model, files, layer, lo)[None]
        else:
            block = _read_block(model, files, layer, lo, hi)[unique[i : j + 1] - lo]
        values[i : j + 1] = post(block)
        i = j + 1
    if len(unique) == len(rows) and (np.diff(rows) > 0).all():
        return values
    return values[inverse]


# --------------------------------------------------------------------------- cache


class _Cache:
    """Small arrays by (model, stimulus, layer); least recently used evicted past a limit."""

    def __init__(self, item_bytes: int, limit: int) -> None:
        self.item_bytes = item_bytes
        self.limit = limit
        self.items: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()
        self.nbytes = 0
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> np.ndarray | None:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str, str], value: np.ndarray) -> bool:
        """Keep ``value`` if smaller than the item size; True if kept."""
        if value.nbytes >= self.item_bytes or value.nbytes > self.limit:
            return False
        with self.lock:
            old = self.items.pop(key, None)
            self.nbytes -= old.nbytes if old is not None else 0
            self.items[key] = value
            self.nbytes += value.nbytes
            while self.nbytes > self.limit:
                _, dropped = self.items.popitem(last=False)
                self.nbytes -= dropped.nbytes
        return True

    def clear(self, model: str | None = None, stimulus: str | None = None) -> None:
        with self.lock:
            for key in [
                k
                for k in self.items
                if (model is None or k[0] == model) and (stimulus is None or k[1] == stimulus)
            ]:
                self.nbytes -= self.items.pop(key).nbytes


@dataclass
class _State:
    """What every level of one opened file shares: its path, cache, handles and state."""

    path: Path
    cache: _Cache
    files: _Files = field(default_factory=_Files)
    closed: bool = False

    def check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.path}: activations were closed; load them again")


# --------------------------------------------------------------------------- lazy mappings


class LayerView:
    """One layer of one model: ``(n_stimuli, n_replicates, feature_dim)`` on disk.

    Nothing is read until asked. Index it like an array whose first axis also takes stimulus
    ids: ``view[:100]``, ``view["grating_003"]``, ``view[["a", "b"]]``, ``view[mask, 0]``.
    ``replicate_mean()`` is the same view averaged over replicates,
    ``(n_stimuli, feature_dim)``. ``np.asarray(view)`` reads it whole; ``blocks()`` streams it.
    """

    def __init__(self, model: LazyModel, layer: str, replicate_mean: bool = False) -> None:
        self._model = model
        self._info = model._info
        self.name = layer
        self.is_replicate_mean = replicate_mean
        self._layer = self._info.layer(layer)

    @property
    def shape(self) -> tuple[int, ...]:
        n, r, d = self._layer.shape
        return (n, d) if self.is_replicate_mean else (n, r, d)

    @property
    def dtype(self) -> np.dtype:
        """dtype of what is returned (a replicate mean is at least float32)."""
        if self.is_replicate_mean:
            return np.result_type(self._layer.dtype, np.float32)
        return self._layer.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def stimulus_ids(self) -> list[str]:
        return list(self._info.stimulus_ids)

    @property
    def attrs(self) -> dict[str, Any]:
        """The layer's attributes (original_shape, reduce, feature_dim, ...)."""
        return dict(self._layer.attrs)

    @property
    def n_stimuli(self) -> int:
        return self._layer.shape[0]

    @property
    def n_replicates(self) -> int:
        return self._layer.shape[1]

    @property
    def feature_dim(self) -> int:
        return self._layer.shape[2]

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        kind = "replicate mean of layer" if self.is_replicate_mean else "layer"
        return (
            f"<{kind} {self.name!r} of model {self._info.name!r}: shape {self.shape}, "
            f"{self.dtype}, in {self._info.path}>"
        )

    def replicate_mean(self) -> LayerView:
        """The view averaged over replicates: ``(n_stimuli, feature_dim)``."""
        return LayerView(self._model, self.name, replicate_mean=True)

    def _post(self, dtype: Any = None, rest: tuple[Any, ...] = ()) -> Transform:
        """What is done to each block read: replicate mean, selection, dtype conversion."""
        mean = self.is_replicate_mean
        out_dtype = np.dtype(dtype) if dtype is not None else self.dtype

        def post(block: np.ndarray) -> np.ndarray:
            if mean:
                block = block.mean(axis=1, dtype=np.float64)
            if rest:
                block = block[(slice(None), *rest)]
            return block.astype(out_dtype, copy=False)

        return post

    def _rows(self, ids: IdSelection | None, rows: Any) -> Any:
        if ids is not None and rows is not None:
            raise TypeError("give ids or rows, not both")
        if ids is not None:
            return self._info.rows_of(ids)
        return slice(None) if rows is None else rows

    def read(
        self,
        ids: IdSelection | None = None,
        *,
        rows: Any = None,
        dtype: Any = None,
        block_bytes: int = READ_BLOCK_BYTES,
    ) -> np.ndarray:
        """Read the layer, or the rows of ``ids`` (stimulus ids) or ``rows`` (row numbers).

        Selected rows come back in the order asked. ``dtype`` converts block by block (e.g.
        ``np.float64`` without a float32 copy of the whole layer in memory).
        """
        state = self._model._state
        state.check_open()
        selection = self._rows(ids, rows)
        return read_rows(
            self._info, state.files, self.name, selection, self._post(dtype), block_bytes
        )

    def blocks(
        self,
        ids: IdSelection | None = None,
        *,
        dtype: Any = None,
        block_bytes: int = READ_BLOCK_BYTES,
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Yield ``(stimulus_ids, values)`` in blocks of about ``block_bytes`` read.

        In row order, or in the order of ``ids``.
        """
        state = self._model._state
        state.check_open()
        step = self._info.block_rows(self.name, block_bytes)
        post = self._post(dtype)
        all_ids = self._info.stimulus_ids
        if ids is None:
            for start in range(0, self.n_stimuli, step):
                stop = min(self.n_stimuli, start + step)
                state.check_open()
                block = read_rows(
                    self._info, state.files, self.name, slice(start, stop), post, block_bytes
                )
                yield all_ids[start:stop], block
            return
        rows = self._info.rows_of(ids)
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            state.check_open()
            block = read_rows(self._info, state.files, self.name, chunk, post, block_bytes)
            yield [all_ids[r] for r in chunk], block

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, block in self.blocks():
            yield from block

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.read(dtype=dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        state = self._model._state
        state.check_open()
        first, rest = (key[0], tuple(key[1:])) if isinstance(key, tuple) else (key, ())
        if first is Ellipsis:
            first, rest = slice(None), (Ellipsis, *rest)
        post = self._post(rest=rest)

        def rows(selection: Any) -> np.ndarray:
            return read_rows(self._info, state.files, self.name, selection, post)

        if isinstance(first, str):
            return rows(np.array([self._info.row_of(first)]))[0]
        if isinstance(first, (int, np.integer)):
            n = self.n_stimuli
            if not -n <= int(first) < n:
                raise IndexError(f"row {first} out of range for {n} stimuli of layer {self.name!r}")
            return rows(np.array([int(first)]))[0]
        if isinstance(first, slice):
            return rows(first)
        selection = np.asarray(first)
        if selection.dtype == bool:
            if selection.shape != (self.n_stimuli,):
                raise IndexError(
                    f"boolean mask of shape {selection.shape} for {self.n_stimuli} stimuli"
                )
            return rows(np.flatnonzero(selection))
        if selection.size == 0:
            return rows(selection.astype(np.int64))
        if selection.dtype.kind in "USO":
            return rows(self._info.rows_of([str(s) for s in selection.reshape(-1)]))
        if selection.dtype.kind in "iu":
            return rows(selection)
        raise TypeError(f"cannot index layer {self.name!r} with {type(first).__name__}")


class LazyStimulus(Mapping[str, np.ndarray]):
    """Layer name -> ``(n_replicates, feature_dim)`` array of one stimulus, read when indexed."""

    def __init__(self, model: LazyModel, stimulus_id: str, row: int) -> None:
        self._model = model
        self.stimulus_id = stimulus_id
        self.row = row

    def __getitem__(self, layer: str) -> np.ndarray:
        state = self._model._state
        state.check_open()
        info = self._model._info
        key = (info.name, self.stimulus_id, layer)
        cached = state.cache.get(key)
        if cached is not None:
            return cached.copy()
        info.layer(layer)
        value = _read_one(info, state.files, layer, self.row)
        # The cache keeps its own copy: callers may change what they are given.
        state.cache.put(key, value.copy())
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._model._info.layers)

    def __len__(self) -> int:
        return len(self._model._info.layers)

    def __contains__(self, layer: object) -> bool:
        return layer in self._model._info.layers

    def clear_cache(self) -> None:
        """Forget the cached arrays of this stimulus."""
        self._model._state.cache.clear(self._model.name, self.stimulus_id)

    def __repr__(self) -> str:
        return f"<stimulus {self.stimulus_id!r} of model {self._model.name!r}: {len(self)} layers>"


class LazyModel(Mapping[str, LazyStimulus]):
    """Stimulus id -> :class:`LazyStimulus` of one model, plus layer-major access."""

    def __init__(self, info: ModelInfo, state: _State) -> None:
        self._info = info
        self._state = state

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def path(self) -> Path:
        """The file this model was opened from."""
        return self._info.path

    @property
    def source_path(self) -> Path:
        """The file holding the data (a joined file's link target)."""
        return self._info.source

    @property
    def layout(self) -> str:
        return self._info.layout

    @property
    def format_version(self) -> int:
        return self._info.format_version

    @property
    def stimulus_ids(self) -> list[str]:
        return list(self._info.stimulus_ids)

    @property
    def layers(self) -> list[str]:
        return list(self._info.layers)

    @property
    def n_stimuli(self) -> int:
        return len(self._info.stimulus_ids)

    @property
    def n_replicates(self) -> int:
        counts = {info.shape[1] for info in self._info.layers.values()}
        if len(counts) > 1:
            raise FormatError(
                f"{self.path}: model {self.name!r} has layers with different "
                f"replicate counts {sorted(counts)}"
            )
        return counts.pop() if counts else int(self._info.attrs.get("n_replicates", 0))

    @property
    def attrs(self) -> dict[str, Any]:
        """Provenance attributes, nested values decoded from JSON."""
        return dict(self._info.attrs)

    def shape(self, layer: str) -> tuple[int, int, int]:
        """``(n_stimuli, n_replicates, feature_dim)`` of ``layer``."""
        return self._info.layer(layer).shape

    def rows(self, ids: IdSelection) -> np.ndarray:
        """Row numbers of stimulus ids in the layer matrices."""
        return self._info.rows_of(ids)

    def __getitem__(self, stimulus_id: str) -> LazyStimulus:
        self._state.check_open()
        return LazyStimulus(self, stimulus_id, self._info.row_of(stimulus_id))

    def __iter__(self) -> Iterator[str]:
        return iter(self._info.stimulus_ids)

    def __len__(self) -> int:
        return len(self._info.stimulus_ids)

    def __contains__(self, stimulus_id: object) -> bool:
        return stimulus_id in self._info.rows

    def layer(self, name: str) -> LayerView:
        """The layer as a lazy ``(n_stimuli, n_replicates, feature_dim)`` view."""
        self._state.check_open()
        return LayerView(self, name)

    def read_layer(
        self,
        name: str,
        ids: IdSelection | None = None,
        *,
        replicate_mean: bool = False,
        dtype: Any = None,
    ) -> np.ndarray:
        """The layer (or the rows of ``ids``) as an array; see :meth:`LayerView.read`."""
        view = self.layer(name)
        return (view.replicate_mean() if replicate_mean else view).read(ids, dtype=dtype)

    def jitter(self) -> np.ndarray | None:
        """The jitter of every exposure ``(n_stimuli, n_replicates, 4)``, if recorded."""
        self._state.check_open()
        if self.layout != LAYOUT:
            return None
        group = self._state.files.group(self._info)
        return group[JITTER][: self.n_stimuli] if JITTER in group else None

    def clear_cache(self) -> None:
        """Forget the cached arrays of every stimulus of this model."""
        self._state.cache.clear(self.name)

    def __repr__(self) -> str:
        return (
            f"<model {self.name!r} in {self.path}: {self.n_stimuli} stimuli, "
            f"{len(self._info.layers)} layers, {self.layout}>"
        )


class LazyActivations(Mapping[str, LazyModel]):
    """Model name -> :class:`LazyModel` of one activation file.

    A context manager: :meth:`close` (or leaving the ``with`` block) closes the data files
    and drops the caches; reading through a closed object raises an error.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        models: Sequence[str] | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        cache_limit: int = DEFAULT_CACHE_LIMIT,
    ) -> None:
        self.path = Path(path)
        with open_file(self.path) as f:
            names = model_names(f)
            self.attrs = {key: _decode(value) for key, value in f.attrs.items()}
            if models is not None:
                infos = {
                    m: ModelInfo.from_group(self.path, m, model_group(f, self.path, m))
                    for m in models
                }
                names = list(models)
            else:
                infos = {}
        self._names = names
        self._state = _State(self.path, _Cache(cache_bytes, cache_limit))
        self._models = {name: LazyModel(info, self._state) for name, info in infos.items()}

    def __getitem__(self, model: str) -> LazyModel:
        self._state.check_open()
        lazy = self._models.get(model)
        if lazy is None:
            if model not in self._names:
                raise ActivationKeyError(
                    f"{self.path}: no model {model!r}; "
                    f"{did_you_mean(str(model), self._names, 'models')}"
                )
            lazy = LazyModel(ModelInfo.read(self.path, model), self._state)
            self._models[model] = lazy
        return lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, model: object) -> bool:
        return model in self._names

    def clear_cache(self) -> None:
        """Forget every cached array."""
        self._state.cache.clear()

    def close(self) -> None:
        """Close the data files and drop the caches; further reads raise an error."""
        self.clear_cache()
        self._state.files.close()
        self._state.closed = True

    def __enter__(self) -> LazyActivations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._state.files.close()

    def __repr__(self) -> str:
        state = "closed" if self._state.closed else f"{len(self)} models"
        return f"<activations {self.path}: {state}>"


# --------------------------------------------------------------------------- functions


def load_lazy_activations(
    path: PathLike,
    *,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    cache_limit: int = DEFAULT_CACHE_LIMIT,
) -> LazyActivations:
    """Lazy nested mapping model -> stimulus id -> layer -> ``(n_replicates, feature_dim)``.

    Nothing is read until indexed. Arrays under ``cache_bytes`` are cached (at most
    ``cache_limit`` bytes in all); ``clear_cache()`` works at every level.
    """
    return LazyActivations(path, cache_bytes=cache_bytes, cache_limit=cache_limit)


def load_model_activations_lazy(
    path: PathLike,
    model: str,
    *,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    cache_limit: int = DEFAULT_CACHE_LIMIT,
) -> LazyActivations:
    """Like :func:`load_lazy_activations` restricted to ``model``: ``{model: LazyModel}``."""
    return LazyActivations(path, models=[model], cache_bytes=cache_bytes, cache_limit=cache_limit)


def get_available_models(path: PathLike) -> list[str]:
    """Model names in the file (a joined file lists its linked models)."""
    with open_file(path) as f:
        return model_names(f)


def get_available_images(path: PathLike, model: str) -> list[str]:
    """Stimulus ids of ``model``, in row order."""
    with open_file(path) as f:
        group = model_group(f, path, model)
        return read_ids(group, group_layout(group))


def get_available_layers(path: PathLike, model: str) -> list[str]:
    """Layer names of ``model`` in network order."""
    return list(ModelInfo.read(path, model).layers)


def get_activation_shape(path: PathLike, model: str, layer: str | None = None) -> tuple[int, int]:
    """``(n_replicates, feature_dim)`` of one stimulus's array of ``layer`` (default: first)."""
    info = ModelInfo.read(path, model)
    if layer is None:
        if not info.layers:
            raise FormatError(f"{path}: model {model!r} has no layers")
        layer = next(iter(info.layers))
    shape = info.layer(layer).shape
    return (shape[1], shape[2])


def read_layer(
    path: PathLike,
    model: str,
    layer: str,
    ids: IdSelection | None = None,
    *,
    replicate_mean: bool = False,
    dtype: Any = None,
    block_bytes: int = READ_BLOCK_BYTES,
) -> np.ndarray:
    """One layer as ``(n_stimuli, n_replicates, feature_dim)`` (or its replicate mean).

    ``ids`` selects rows by stimulus id (in that order). The file is closed on return.
    """
    with LazyActivations(path, models=[model], cache_bytes=0) as acts:
        view = acts[model].layer(layer)
        if replicate_mean:
            view = view.replicate_mean()
        return view.read(ids, dtype=dtype, block_bytes=block_bytes)


def iter_layer(
    path: PathLike,
    model: str,
    layer: str,
    ids: IdSelection | None = None,
    *,
    replicate_mean: bool = False,
    dtype: Any = None,
    block_bytes: int = READ_BLOCK_BYTES,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Stream one layer as ``(stimulus_ids, values)`` blocks of about ``block_bytes`` read.

    Unknown models, layers or ids raise here, before the first block; the file is closed
    when the iteration ends.
    """
    acts = LazyActivations(path, models=[model], cache_bytes=0)
    view = acts[model].layer(layer)
    if replicate_mean:
        view = view.replicate_mean()
    if ids is not None:
        acts[model].rows(ids)

    def blocks() -> Iterator[tuple[list[str], np.ndarray]]:
        try:
            yield from view.blocks(ids, dtype=dtype, block_bytes=block_bytes)
        finally:
            acts.close()

    return blocks()


# --------------------------------------------------------------------------- inspection


def _describe_layers(info: ModelInfo, group: h5py.Group) -> list[dict[str, Any]]:
    out = []
    for name, layer in info.layers.items():
        entry: dict[str, Any] = {
            "name": name,
            "shape": list(layer.shape),
            "dtype": str(layer.dtype),
            "attrs": layer.attrs,
        }
        if info.layout == LAYOUT:
            dset = group[LAYERS_GROUP][name]
            entry["chunks"] = list(dset.chunks) if dset.chunks else None
            entry["compression"] = dset.compression or "none"
            entry["compression_opts"] = dset.compression_opts
            entry["virtual"] = dset.is_virtual
            entry["storage_bytes"] = None if dset.is_virtual else int(dset.id.get_storage_size())
        else:
            first = group[info.stimulus_ids[0]][name]
            entry["chunks"] = None
            entry["compression"] = first.compression or "none"
            entry["virtual"] = False
            entry["storage_bytes"] = int(first.id.get_storage_size()) * len(info.stimulus_ids)
        out.append(entry)
    return out


def describe_model(path: PathLike, f: h5py.File, model: str) -> dict[str, Any]:
    """Layers (shape, dtype, chunks, compression, bytes on disk) and provenance of a model."""
    link = f.get(model, getlink=True)
    group = model_group(f, path, model)
    info = ModelInfo.from_group(Path(path), model, group)
    layers = _describe_layers(info, group)
    sizes = [entry["storage_bytes"] for entry in layers]
    replicates = sorted({entry["shape"][1] for entry in layers})
    return {
        "name": model,
        "link": link.filename if isinstance(link, h5py.ExternalLink) else None,
        "source": str(info.source),
        "layout": info.layout,
        "format_version": info.format_version,
        "n_stimuli": len(info.stimulus_ids),
        "n_replicates": replicates[0] if len(replicates) == 1 else replicates,
        "n_layers": len(layers),
        "storage_bytes": None if None in sizes else int(sum(sizes)),
        "layers": layers,
        "attrs": info.attrs,
    }


def describe_file(path: PathLike, model: str | None = None) -> dict[str, Any]:
    """What ``actpipe inspect`` shows, as a JSON-able dict.

    The file's kind, format, size and root attributes, then for every model (or ``model``
    only) its stimulus count, layers and provenance attributes. A model whose link target
    cannot be opened is listed with an ``error`` instead of stopping the description.
    """
    path = check_file(path)
    with open_file(path) as f:
        attrs = {key: _decode(value) for key, value in f.attrs.items()}
        names = model_names(f)
        kind = attrs.get("kind") or ("per-model" if len(names) == 1 else "multi-model")
        out: dict[str, Any] = {
            "path": str(path),
            "size_bytes": path.stat().st_size,
            "kind": kind,
            "format_version": check_version(f.attrs, path),
            "layout": attrs.get("layout") or PER_STIMULUS,
            "attrs": attrs,
            "model_names": names,
            "models": [],
        }
        if model is not None:
            model_group(f, path, model)
        for name in names if model is None else [model]:
            try:
                out["models"].append(describe_model(path, f, name))
            except FormatError as exc:
                if model is not None:
                    raise
                out["models"].append({"name": name, "error": str(exc)})
    return out
