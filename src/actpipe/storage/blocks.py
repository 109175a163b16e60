"""Reading layer data: open handles kept per reader, rows read in bounded blocks, and the
cache of small arrays."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..errors import ActivationKeyError, FormatError
from .files import dataset_names, open_h5
from .format import LAYERS_GROUP, LAYOUT
from .metadata import ModelInfo, StoredLayer, as_rows

READ_BLOCK_BYTES = 64 << 20
"""Rows are read in blocks of about this size, so a layer larger than memory can stream."""


class OpenFiles:
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
                f = self.files[model.source] = open_h5(model.source)
            return f[model.group]

    def dataset(self, model: ModelInfo, layer: str) -> h5py.Dataset:
        """The layer-major dataset of ``layer`` (kept open, so its chunk cache is reused)."""
        key = (model.source, model.group, layer)
        with self.lock:
            dset = self.datasets.get(key)
            if dset is None or not dset.id.valid:
                stored = model.layers[layer].key or layer
                dset = self.datasets[key] = self.group(model)[LAYERS_GROUP][stored]
            return dset

    def close(self) -> None:
        with self.lock:
            self.datasets.clear()
            for f in self.files.values():
                with contextlib.suppress(Exception):
                    f.close()
            self.files.clear()


def read_one(model: ModelInfo, files: OpenFiles, layer: str, row: int) -> np.ndarray:
    """Row ``row`` of ``layer`` as ``(n_replicates, feature_dim)``."""
    if model.layout == LAYOUT:
        return files.dataset(model, layer)[row]
    sid = model.stimulus_ids[row]
    stimulus = files.group(model)[sid]
    key = model.layers[layer].key or layer
    if key not in stimulus:
        raise ActivationKeyError(
            f"{model.source}: stimulus {sid!r} of model {model.name!r} has no layer "
            f"{layer!r} (its layers: {', '.join(dataset_names(stimulus)) or 'none'})"
        )
    array = as_rows(stimulus[key][()])
    if array.shape != model.layers[layer].shape[1:]:
        raise FormatError(
            f"{model.source}: /{model.name}/{sid}/{layer} has shape {array.shape}, "
            f"other stimuli {model.layers[layer].shape[1:]}"
        )
    return array


def read_block(model: ModelInfo, files: OpenFiles, layer: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``layer`` as ``(stop - start, n_replicates, feature_dim)``."""
    if model.layout == LAYOUT:
        return files.dataset(model, layer)[start:stop]
    info = model.layers[layer]
    out = np.empty((stop - start, *info.shape[1:]), dtype=info.dtype)
    for i in range(start, stop):
        out[i - start] = read_one(model, files, layer, i)
    return out


Transform = Callable[[np.ndarray], np.ndarray]
"""What is done to each block read (replicate mean, a selection, a dtype conversion)."""


def block_rows(model: ModelInfo, layer: str, block_bytes: int = READ_BLOCK_BYTES) -> int:
    """Rows per read block: about ``block_bytes``, a whole number of chunks if possible."""
    info = model.layers[layer]
    row_bytes = max(1, info.shape[1] * info.shape[2] * info.dtype.itemsize)
    rows = max(1, int(block_bytes) // row_bytes)
    chunk_rows = info.chunks[0] if info.chunks else 1
    if rows >= chunk_rows:
        rows -= rows % chunk_rows
    return rows


def empty_result(info: StoredLayer, post: Transform, n_rows: int) -> np.ndarray:
    """The array that ``n_rows`` rows of the layer become after ``post``, to be filled."""
    probe = post(np.zeros((0, *info.shape[1:]), dtype=info.dtype))
    return np.empty((n_rows, *probe.shape[1:]), dtype=probe.dtype)


def read_rows(
    model: ModelInfo,
    files: OpenFiles,
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
    step = block_rows(model, layer, block_bytes)
    if isinstance(rows, slice):
        start, stop, stride = rows.indices(n)
        if stride != 1:
            return read_rows(model, files, layer, np.arange(start, stop, stride), post, block_bytes)
        out = empty_result(info, post, max(0, stop - start))
        for a in range(start, stop, step):
            b = min(stop, a + step)
            out[a - start : b - start] = post(read_block(model, files, layer, a, b))
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
    values = empty_result(info, post, len(unique))
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
            block = read_one(model, files, layer, lo)[None]
        else:
            block = read_block(model, files, layer, lo, hi)[unique[i : j + 1] - lo]
        values[i : j + 1] = post(block)
        i = j + 1
    if len(unique) == len(rows) and (np.diff(rows) > 0).all():
        return values
    return values[inverse]


# --------------------------------------------------------------------------- cache


class Cache:
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
class ReaderState:
    """What every level of one opened file shares: its path, cache, handles and state."""

    path: Path
    cache: Cache
    files: OpenFiles = field(default_factory=OpenFiles)
    closed: bool = False

    def check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.path}: activations were closed; load them again")
