"""Writing a per-model activation file: datasets made once, filled in row slices, renamed.

Besides the layers (``/{model}/layers/{layer}``), a file may hold further datasets with one
row per stimulus: layers of a second group (the gradient file's
``/{model}/gradient/{layer}``) and per-exposure records (``/{model}/target_index``). They
are created with :meth:`ActivationWriter.add_layer` (``group=``) and
:meth:`ActivationWriter.add_rows`, written with the layers by ``write_rows(..., extra=)`` and
trimmed, checkpointed and resumed with them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._io import write_json
from ..names import layer_key
from .format import (
    FORMAT_VERSION,
    JITTER,
    JITTER_FIELDS,
    LAYERS_GROUP,
    LAYOUT,
    STIMULUS_IDS,
    StorageOptions,
    chunk_shape,
    encode_attr,
)

CHUNK_CACHE_BYTES = 64 << 20

log = logging.getLogger(__name__)


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where an activation file is written until complete (stable, so a rerun can resume)."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def progress_path(path: str | os.PathLike[str]) -> Path:
    """The JSON beside a partial file recording how far the writing got."""
    path = Path(path)
    return path.with_name(f".{path.name}.progress.json")


def producer() -> str:
    from .._version import __version__

    return f"actpipe {__version__}"


class ActivationWriter:
    """Write one model's activations for one stimulus set into ``path``.

    The file is written under a temporary name next to ``path`` (:func:`partial_path`) and
    renamed in :meth:`finish`; if the writer is left through an exception (or the process
    dies) the final path is never created.

    Resuming: :meth:`checkpoint` flushes the file and records the progress (next image,
    rows written, ids) in :func:`progress_path`. A new writer given the same ``resume_key``
    reopens that partial file and exposes the recorded progress as :attr:`resumed`; with
    another key, or an unreadable partial file, it starts over.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        model: str,
        n_stimuli: int,
        n_replicates: int,
        options: StorageOptions | None = None,
        resume_key: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.model = model
        self.n_stimuli = n_stimuli
        self.n_replicates = n_replicates
        self.options = options or StorageOptions()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = partial_path(self.path)
        self.progress_path = progress_path(self.path)
        self.resume_key = resume_key
        self.resumed: dict[str, Any] | None = None
        self._last_checkpoint = time.monotonic()
        if resume_key is not None and self._reopen(resume_key):
            return
        with contextlib.suppress(FileNotFoundError):
            self.progress_path.unlink()
        self.file = h5py.File(self.tmp_path, "w", rdcc_nbytes=CHUNK_CACHE_BYTES)
        self.file.attrs["format_version"] = FORMAT_VERSION
        self.file.attrs["layout"] = LAYOUT
        self.file.attrs["producer"] = producer()
        self.group = self.file.create_group(model)
        self.layers = self.group.create_group(LAYERS_GROUP)
        self.layer_order: list[str] = []
        self.keys: dict[str, str] = {}
        self.datasets: list[str] = []
        self.jitter = self.group.create_dataset(
            JITTER,
            shape=(n_stimuli, n_replicates, len(JITTER_FIELDS)),
            maxshape=(None, n_replicates, len(JITTER_FIELDS)),
            dtype="f8",
            chunks=(max(1, min(n_stimuli, 4096)), n_replicates, len(JITTER_FIELDS)),
        )
        self.jitter.attrs["fields"] = encode_attr(list(JITTER_FIELDS))

    def _reopen(self, resume_key: str) -> bool:
        """Reopen a partial file left by an interrupted run with the same key."""
        if not (self.tmp_path.exists() and self.progress_path.exists()):
            return False
        try:
            progress = json.loads(self.progress_path.read_text())
            if progress.get("resume_key") != resume_key:
                log.info(
                    "%s: progress of a different configuration found; starting over", self.tmp_path
                )
                return False
            self.file = h5py.File(self.tmp_path, "r+", rdcc_nbytes=CHUNK_CACHE_BYTES)
            self.group = self.file[self.model]
            self.layers = self.group[LAYERS_GROUP]
            self.jitter = self.group[JITTER]
            self.layer_order = list(progress["layer_order"])
            self.keys = {name: layer_key(name) for name in self.layer_order}
            self.datasets = list(
                progress.get("datasets", [f"{LAYERS_GROUP}/{key}" for key in self.keys.values()])
            )
            missing = [name for name in self.layer_order if self.keys[name] not in self.layers]
            missing += [path for path in self.datasets if path not in self.group]
            if missing:
                raise KeyError(f"datasets {missing} missing")
        except Exception as exc:  # a partial file damaged by the interruption
            with contextlib.suppress(Exception):
                self.file.close()
            log.warning("%s: cannot resume (%s); starting over", self.tmp_path, exc)
            return False
        self.resumed = progress
        return True

    def __enter__(self) -> ActivationWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def add_layer(
        self,
        name: str,
        feature_dim: int,
        original_shape: tuple[int, ...],
        attrs: dict[str, Any],
        group: str = LAYERS_GROUP,
    ) -> h5py.Dataset:
        """Create the dataset of one layer with its final shape and chunking.

        The dataset is ``{group}/{layer_key(name)}`` (default group ``layers``); ``name`` is
        kept in its ``name`` attribute. Layers of ``layers`` are written by name through
        :meth:`write_rows`'s ``values``; layers of another group (a gradient file's
        ``gradient``) through its ``extra``, keyed by :meth:`path_of`, and are not part of
        ``layer_order``.
        """
        key = layer_key(name)
        path = self.path_of(name, group)
        if path in self.datasets or (group == LAYERS_GROUP and key in self.layers):
            raise ValueError(f"model {self.model!r}: layer {name!r} added twice to {group!r}")
        dtype = np.dtype(self.options.dtype)
        chunks = chunk_shape(
            self.n_stimuli, self.n_replicates, feature_dim, dtype.itemsize, self.options.chunk_bytes
        )
        container = self.layers if group == LAYERS_GROUP else self.group.require_group(group)
        dset = container.create_dataset(
            key,
            shape=(self.n_stimuli, self.n_replicates, feature_dim),
            maxshape=(None, self.n_replicates, feature_dim),
            dtype=dtype,
            chunks=chunks,
            **self.options.dataset_kwargs(),
        )
        dset.attrs["original_shape"] = np.asarray(original_shape, dtype=np.int64)
        dset.attrs["feature_dim"] = feature_dim
        for attr, value in {**attrs, "name": name}.items():
            dset.attrs[attr] = encode_attr(value)
        if group == LAYERS_GROUP:
            self.layer_order.append(name)
            self.keys[name] = key
        self.datasets.append(path)
        return dset

    @staticmethod
    def path_of(name: str, group: str = LAYERS_GROUP) -> str:
        """The path below ``/{model}`` of layer ``name`` in ``group``."""
        return f"{group}/{layer_key(name)}"

    def add_rows(
        self,
        name: str,
        tail_shape: tuple[int, ...],
        dtype: Any,
        attrs: dict[str, Any] | None = None,
    ) -> h5py.Dataset:
        """Create ``/{model}/{name}`` of shape ``(n_stimuli, *tail_shape)``: one row per
        stimulus, written with the layers (``write_rows(..., extra={name: ...})``)."""
        row_bytes = max(1, int(np.prod(tail_shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        rows = max(1, min(max(self.n_stimuli, 1), self.options.chunk_bytes // row_bytes))
        dset = self.group.create_dataset(
            name,
            shape=(self.n_stimuli, *tail_shape),
            maxshape=(None, *tail_shape),
            dtype=dtype,
            chunks=(rows, *tail_shape),
        )
        for key, value in (attrs or {}).items():
            dset.attrs[key] = encode_attr(value)
        self.datasets.append(name)
        return dset

    def write_rows(
        self,
        start: int,
        jitter: np.ndarray,
        values: dict[str, np.ndarray],
        extra: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Write rows ``start:start+len(jitter)`` of the jitter record and of every layer.

        ``values`` maps layer names (of ``/{model}/layers``), ``extra`` paths below
        ``/{model}`` (datasets made by ``add_layer(group=...)`` or :meth:`add_rows`).
        """
        stop = start + len(jitter)
        self.jitter[start:stop] = jitter
        for name, array in values.items():
            self._write(self.layers[self.keys[name]], name, start, stop, array)
        for path, array in (extra or {}).items():
            self._write(self.group[path], path, start, stop, array)

    def _write(self, dset: h5py.Dataset, name: str, start: int, stop: int, array: np.ndarray):
        if dset.dtype == np.float16:
            converted = array.astype(np.float16)
            if not np.isfinite(converted).all() and np.isfinite(array).all():
                raise OverflowError(
                    f"model {self.model!r}, layer {name!r}: values beyond float16's range "
                    f"(max |x| = {np.abs(array).max():.3g}); set storage.dtype to float32"
                )
            array = converted
        dset[start:stop] = array

    def checkpoint(self, state: dict[str, Any], every_seconds: float = 0.0) -> bool:
        """Flush and record ``state`` (JSON-able progress) if ``every_seconds`` have passed."""
        if self.resume_key is None:
            return False
        now = time.monotonic()
        if now - self._last_checkpoint < every_seconds:
            return False
        self.file.flush()
        write_json(
            self.progress_path,
            {
                "resume_key": self.resume_key,
                "layer_order": self.layer_order,
                "datasets": self.datasets,
                **state,
            },
            indent=None,
        )
        self._last_checkpoint = now
        return True

    def finish(self, stimulus_ids: list[str], attrs: dict[str, Any]) -> Path:
        """Trim to the rows written, store ids and provenance, close and rename into place."""
        n = len(stimulus_ids)
        if n != self.n_stimuli:
            self.jitter.resize(n, axis=0)
            for path in self.datasets:
                self.group[path].resize(n, axis=0)
        self.group.create_dataset(
            STIMULUS_IDS,
            data=np.asarray(stimulus_ids, dtype=object),
            dtype=h5py.string_dtype("utf-8"),
            maxshape=(None,),
        )
        attrs = {
            **attrs,
            "layer_order": self.layer_order,
            "n_stimuli": n,
            "n_replicates": self.n_replicates,
            "storage": self.options.to_dict(),
        }
        for key, value in attrs.items():
            self.group.attrs[key] = encode_attr(value)
        self.file.close()
        os.replace(self.tmp_path, self.path)
        with contextlib.suppress(FileNotFoundError):
            self.progress_path.unlink()
        return self.path

    def abort(self, keep_progress: bool = False) -> None:
        """Close the temporary file; delete it unless ``keep_progress`` and a checkpoint exists.

        The final path is left as it was in every case.
        """
        with contextlib.suppress(Exception):
            self.file.close()
        if keep_progress and self.progress_path.exists():
            return
        with contextlib.suppress(FileNotFoundError):
            self.tmp_path.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.progress_path.unlink()
