"""The reading API: a lazy nested mapping (model -> stimulus id -> layer) and layer-major
views, plus the functions that take a path (``read_layer``, ``iter_layer``, ...)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ActivationKeyError, FormatError
from ..names import no_such
from .blocks import (
    READ_BLOCK_BYTES,
    Cache,
    ReaderState,
    Transform,
    block_rows,
    read_one,
    read_rows,
)
from .files import PathLike, group_layout, model_group, model_names, open_file, read_ids
from .format import JITTER, LAYOUT, decode_value
from .metadata import IdSelection, ModelInfo

DEFAULT_CACHE_BYTES = 10 * 1024 * 1024
"""Arrays smaller than this are kept after their first read (the older tools' 10 MB)."""
DEFAULT_CACHE_LIMIT = 1 << 30
"""At most this many bytes are cached per opened file (least recently used go first)."""


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
    def key(self) -> str:
        """The name of the layer's dataset (its layer key; see :mod:`actpipe.names`)."""
        return self._layer.key or self.name

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
        step = block_rows(self._info, self.name, block_bytes)
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
        value = read_one(info, state.files, layer, self.row)
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

    def __init__(self, info: ModelInfo, state: ReaderState) -> None:
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
            self.attrs = {key: decode_value(value) for key, value in f.attrs.items()}
            if models is not None:
                infos = {
                    m: ModelInfo.from_group(self.path, m, model_group(f, self.path, m))
                    for m in models
                }
                names = list(models)
            else:
                infos = {}
        self._names = names
        self._state = ReaderState(self.path, Cache(cache_bytes, cache_limit))
        self._models = {name: LazyModel(info, self._state) for name, info in infos.items()}

    def __getitem__(self, model: str) -> LazyModel:
        self._state.check_open()
        lazy = self._models.get(model)
        if lazy is None:
            if model not in self._names:
                raise ActivationKeyError(no_such("model", model, self._names, str(self.path)))
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
