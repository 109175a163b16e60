"""Adding to an existing activation file: a new model, or new stimuli for a model.

Nothing already in the file is rewritten. The order of the writes makes an interruption
harmless to readers:

* a new model is written under a hidden name ``/.{model}.partial`` (readers skip names
  starting with a dot) and renamed to ``/{model}`` once complete; in a per-set file the
  model is an external link, added in one step;
* new stimuli are written as extra rows of every layer and of ``jitter`` first; the rows
  become part of the file when ``stimulus_ids`` is extended, which is the last write.
  Readers take ``stimulus_ids`` as the number of rows, so rows left by an interruption are
  ignored, and the next extension of that model overwrites them.

HDF5 itself does not journal its metadata: a process killed while it has a file open for
writing can leave the file unreadable. ``copy=True`` (``actpipe append --copy``) avoids
that risk at the cost of one copy of the file: the change is made on a copy under a
temporary name, renamed over the original when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._io import atomic_output
from ..errors import ActivationKeyError, FormatError
from ..names import no_such
from .blocks import READ_BLOCK_BYTES
from .files import (
    check_file,
    check_version,
    choose_model,
    data_file,
    dataset_names,
    model_names,
)
from .format import (
    JITTER,
    LAYERS_GROUP,
    LAYOUT,
    STIMULUS_IDS,
    chunk_shape,
    decode_attr,
    encode_attr,
)
from .lazy import LazyActivations, get_available_models
from .metadata import layer_datasets
from .writer import producer

PathLike = str | os.PathLike[str]


def hidden_name(model: str) -> str:
    """Where a model being appended is written until complete."""
    return f".{model}.partial"


@contextlib.contextmanager
def editing(path: PathLike, copy: bool = False) -> Iterator[h5py.File]:
    """``path`` opened for writing, or (``copy``) a copy renamed over it when the block ends."""
    path = check_file(path)
    if not copy:
        with h5py.File(path, "r+") as f:
            check_version(f.attrs, path)
            yield f
        return
    with atomic_output(path) as tmp:
        shutil.copy2(path, tmp)
        with h5py.File(tmp, "r+") as f:
            check_version(f.attrs, path)
            yield f


def _layer_major(f: h5py.File, path: PathLike) -> None:
    if decode_attr(f.attrs.get("layout", "")) != LAYOUT:
        raise FormatError(
            f"{path}: not in actpipe's layer-major layout; convert it first "
            "(`actpipe import OLD.h5 NEW.h5`) and append to the new file"
        )


def _is_joined(f: h5py.File) -> bool:
    return decode_attr(f.attrs.get("kind", "")) == "joined"


# --------------------------------------------------------------------------- new model


def append_model(
    path: PathLike,
    source: PathLike,
    model: str | None = None,
    *,
    copy: bool = False,
    block_bytes: int = READ_BLOCK_BYTES,
) -> Path:
    """Add ``model`` of ``source`` (default: its only model) to the activation file ``path``.

    In a per-set (joined) file the model becomes an external link to ``source`` (stored
    relative to ``path``'s folder). In a data file the model's datasets are copied, with
    their chunking and compression, under a hidden name renamed when complete.
    """
    path, source = check_file(path), check_file(source)
    with h5py.File(source, "r") as src:
        check_version(src.attrs, source)
        _layer_major(src, source)
        names = model_names(src)
        model = choose_model(source, names, model)
    with h5py.File(path, "r") as f:
        check_version(f.attrs, path)
        _layer_major(f, path)
        joined = _is_joined(f)
        if model in model_names(f):
            raise ValueError(
                f"{path}: already has model {model!r}; to add stimuli to it, append a file "
                "holding only new stimuli of that model"
            )
    with editing(path, copy) as f:
        if joined:
            target = os.path.relpath(source.resolve(), path.parent.resolve())
            f[model] = h5py.ExternalLink(target, f"/{model}")
            listed = decode_attr(f.attrs.get("models", "[]"))
            f.attrs["models"] = encode_attr([*(listed if isinstance(listed, list) else []), model])
        else:
            hidden = hidden_name(model)
            if hidden in f:  # left by an interrupted append
                del f[hidden]
            with h5py.File(source, "r") as src:
                _copy_model(src[model], f, hidden, block_bytes)
            f.flush()
            f.move(hidden, model)
    return path


def _copy_model(src: h5py.Group, f: h5py.File, name: str, block_bytes: int) -> None:
    """Copy a model group into ``f[name]``, layers row block by row block (virtual ones too)."""
    group = f.create_group(name)
    n = len(src[STIMULUS_IDS])
    layers = group.create_group(LAYERS_GROUP)
    for layer in dataset_names(src[LAYERS_GROUP]):
        dset = src[LAYERS_GROUP][layer]
        _, n_rep, dim = dset.shape
        chunks = dset.chunks if dset.chunks and not dset.is_virtual else None
        chunks = chunks or chunk_shape(n, n_rep, dim, dset.dtype.itemsize)
        kwargs: dict[str, Any] = {}
        if dset.compression and not dset.is_virtual:
            kwargs = {"compression": dset.compression, "compression_opts": dset.compression_opts}
        out = layers.create_dataset(
            layer,
            shape=(n, n_rep, dim),
            maxshape=(None, n_rep, dim),
            dtype=dset.dtype,
            chunks=chunks,
            **kwargs,
        )
        for key, value in dset.attrs.items():
            out.attrs[key] = value
        step = max(1, block_bytes // max(1, n_rep * dim * dset.dtype.itemsize))
        for start in range(0, n, step):
            out[start : start + step] = dset[start : min(n, start + step)]
    ids = src[STIMULUS_IDS].asstr()[()]
    group.create_dataset(
        STIMULUS_IDS,
        data=np.asarray(ids, dtype=object),
        dtype=h5py.string_dtype("utf-8"),
        maxshape=(None,),
    )
    if JITTER in src:
        jitter = src[JITTER][:n]
        out = group.create_dataset(
            JITTER,
            data=jitter,
            maxshape=(None, *jitter.shape[1:]),
            chunks=(max(1, min(n, 4096)), *jitter.shape[1:]),
        )
        for key, value in src[JITTER].attrs.items():
            out.attrs[key] = value
    for key, value in src.attrs.items():
        group.attrs[key] = value


# --------------------------------------------------------------------------- new stimuli


class _Extension:
    """New rows for every layer of one model: written first, committed by the ids."""

    def __init__(self, f: h5py.File, path: Path, model: str, new_ids: Sequence[str]) -> None:
        _layer_major(f, path)
        if model not in f:
            raise ActivationKeyError(no_such("model", model, model_names(f), str(path)))
        self.where = f"{path}: model {model!r}"
        self.group = group = f[model]
        ids_dset = group[STIMULUS_IDS]
        self.ids = ids_dset.asstr()[()].tolist()
        self.new_ids = [str(s) for s in new_ids]
        self.n, self.k = len(self.ids), len(self.new_ids)
        repeated = sorted({s for s in self.new_ids if self.new_ids.count(s) > 1})
        present = sorted(set(self.new_ids) & set(self.ids))
        if repeated or present:
            raise ValueError(
                f"{self.where}: stimulus ids already present or repeated: "
                f"{', '.join(map(repr, (present + repeated)[:10]))}; every appended id must be new"
            )
        order = decode_attr(group.attrs.get("layer_order", "[]"))
        self.layers = {
            name: dset for name, (_, dset) in layer_datasets(group[LAYERS_GROUP], order).items()
        }
        targets = [ids_dset, *self.layers.values()] + ([group[JITTER]] if JITTER in group else [])
        for dset in targets:
            if dset.is_virtual or dset.maxshape[0] is not None:
                raise FormatError(
                    f"{self.where}: {dset.name} cannot grow (fixed size or virtual dataset over "
                    "shards); append to a copy made with `actpipe import`/extraction instead"
                )
            if dset is not ids_dset and dset.shape[0] < self.n:
                raise FormatError(f"{self.where}: {dset.name} has fewer rows than stimulus ids")
        self.written = dict.fromkeys(self.layers, 0)
        for dset in targets[1:]:  # rows past the ids (an interrupted append) are overwritten
            dset.resize(self.n + self.k, axis=0)

    def write(self, layer: str, offset: int, values: np.ndarray) -> None:
        """Rows ``offset:offset+len(values)`` of the new stimuli for ``layer``."""
        dset = self.layers.get(layer)
        if dset is None:
            raise ActivationKeyError(no_such("layer", layer, list(self.layers), self.where))
        values = np.asarray(values)
        if values.shape[1:] != dset.shape[1:] or offset + len(values) > self.k:
            raise ValueError(
                f"{self.where}, layer {layer!r}: new rows of shape {values.shape} at {offset} "
                f"do not fit ({self.k}, {dset.shape[1]}, {dset.shape[2]})"
            )
        if dset.dtype == np.float16:
            with np.errstate(over="ignore"):
                converted = values.astype(np.float16)
            if not np.isfinite(converted).all() and np.isfinite(values).all():
                raise OverflowError(f"{self.where}, layer {layer!r}: values beyond float16's range")
            values = converted
        start = self.n + offset
        dset[start : start + len(values)] = values
        self.written[layer] += len(values)

    def commit(self, jitter: np.ndarray | None, note: dict[str, Any]) -> None:
        missing = [name for name, rows in self.written.items() if rows != self.k]
        if missing:
            raise ValueError(f"{self.where}: no (or too few) new rows for layers {missing}")
        if JITTER in self.group:
            dset = self.group[JITTER]
            if jitter is None:
                jitter = np.full((self.k, *dset.shape[1:]), np.nan)
            dset[self.n :] = jitter
        self.group.file.flush()
        ids_dset = self.group[STIMULUS_IDS]
        ids_dset.resize(self.n + self.k, axis=0)
        ids_dset[self.n :] = np.asarray(self.new_ids, dtype=object)
        self.group.file.flush()
        self.group.attrs["n_stimuli"] = self.n + self.k
        history = decode_attr(self.group.attrs.get("appended", "[]"))
        history = history if isinstance(history, list) else []
        self.group.attrs["appended"] = encode_attr(
            [*history, {"rows": [self.n, self.n + self.k], "producer": producer(), **note}]
        )


def extend_model(
    path: PathLike,
    model: str,
    stimulus_ids: Sequence[str],
    layers: Mapping[str, np.ndarray],
    jitter: np.ndarray | None = None,
    *,
    copy: bool = False,
) -> Path:
    """Append rows for new ``stimulus_ids`` to every layer of ``model`` in ``path``.

    ``layers`` maps every layer name to ``(len(stimulus_ids), n_replicates, feature_dim)``;
    ``jitter`` (optional) is ``(len(stimulus_ids), n_replicates, 4)``, NaN when not given.
    In a per-set file the model's own file (the link target) is extended.
    """
    target = data_file(path, model)
    with editing(target, copy) as f:
        ext = _Extension(f, target, model, stimulus_ids)
        for name, values in layers.items():
            ext.write(name, 0, values)
        ext.commit(None if jitter is None else np.asarray(jitter, dtype=np.float64), {})
    return target


def append_file(
    path: PathLike,
    source: PathLike,
    models: Sequence[str] | None = None,
    *,
    copy: bool = False,
    block_bytes: int = READ_BLOCK_BYTES,
) -> list[str]:
    """Add what ``source`` holds to ``path``: new models whole, new stimuli of known models.

    Returns one line per model saying what was done.
    """
    path, source = check_file(path), check_file(source)
    with LazyActivations(source, cache_bytes=0) as src:
        chosen = list(src) if models is None else list(models)
        present = set(get_available_models(path))
        done = []
        for model in chosen:
            if model not in present:
                append_model(path, source, model, copy=copy, block_bytes=block_bytes)
                done.append(f"{model}: added ({src[model].n_stimuli} stimuli)")
                continue
            lazy = src[model]
            target = data_file(path, model)
            with editing(target, copy) as f:
                ext = _Extension(f, target, model, lazy.stimulus_ids)
                expected = list(ext.layers)
                if sorted(lazy.layers) != sorted(expected):
                    raise ValueError(
                        f"{source}: model {model!r} has layers {lazy.layers}, {target} has "
                        f"{expected}; only the same layers can be appended"
                    )
                for layer in lazy.layers:
                    offset = 0
                    for _, block in lazy.layer(layer).blocks(block_bytes=block_bytes):
                        ext.write(layer, offset, block)
                        offset += len(block)
                ext.commit(lazy.jitter(), {"source": str(source)})
            done.append(f"{model}: {lazy.n_stimuli} stimuli appended")
    return done
