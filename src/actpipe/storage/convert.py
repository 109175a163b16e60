"""Converting between actpipe's layer-major layout and the older per-stimulus layout.

The per-stimulus layout is ``/{model}/{stimulus_id}/{layer}``, one ``(n_replicates,
feature_dim)`` dataset per stimulus and layer, as the older pipeline wrote it.

* :func:`export_per_stimulus` writes that layout from any file actpipe reads. Besides the
  datasets the older tools read, it keeps what the layout has no place for in attributes
  they ignore: the model's provenance, ``layer_order`` and ``layer_attrs`` on each model
  group, the jitter of each exposure on each stimulus group; groups track creation order so
  stimuli and layers keep their order.
* :func:`import_per_stimulus` converts such a file (with or without those attributes) into
  actpipe's layout, so existing results can join a workflow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._io import atomic_output
from ..errors import ActivationKeyError, FormatError
from ..names import layer_key, no_such
from .blocks import READ_BLOCK_BYTES
from .files import dataset_names
from .format import (
    FORMAT_VERSION,
    JITTER_FIELDS,
    LAYOUT,
    PER_STIMULUS,
    StorageOptions,
    encode_attr,
)
from .join import join_activations
from .lazy import LazyActivations, LazyModel
from .writer import ActivationWriter, producer

PathLike = str | os.PathLike[str]

# Model attributes the writer sets itself, and the export's bookkeeping.
_WRITER_ATTRS = ("layer_order", "n_stimuli", "n_replicates", "storage", "layer_attrs")
_LAYER_WRITER_ATTRS = ("original_shape", "feature_dim")


def _choose_models(acts: LazyActivations, models: Sequence[str] | None) -> list[str]:
    names = list(acts)
    if models is None:
        return names
    for model in models:
        if model not in names:
            raise ActivationKeyError(no_such("model", model, names, str(acts.path)))
    return list(models)


def _check_name(name: str, what: str, where: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise FormatError(
            f"{where}: {what} {name!r} cannot be an HDF5 group name in the per-stimulus layout"
        )


# --------------------------------------------------------------------------- export


def export_per_stimulus(
    path: PathLike,
    out: PathLike,
    models: Sequence[str] | None = None,
    *,
    block_bytes: int = READ_BLOCK_BYTES,
) -> Path:
    """Write ``out`` in the per-stimulus layout ``/{model}/{stimulus_id}/{layer}``.

    Values keep their stored dtype. ``out`` appears only when complete.
    """
    out = Path(out)
    with LazyActivations(path, cache_bytes=0) as acts:
        chosen = _choose_models(acts, models)
        with atomic_output(out) as tmp, h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["layout"] = PER_STIMULUS
            f.attrs["producer"] = producer()
            f.attrs["exported_from"] = str(path)
            for model in chosen:
                _export_model(acts[model], f, block_bytes)
    return out


def _export_model(lazy: LazyModel, f: h5py.File, block_bytes: int) -> None:
    where = f"{lazy.path}: model {lazy.name!r}"
    _check_name(lazy.name, "model name", where)
    group = f.create_group(lazy.name, track_order=True)
    layer_attrs = {name: lazy.layer(name).attrs for name in lazy.layers}
    attrs = {k: v for k, v in lazy.attrs.items() if k not in ("layer_order", "layer_attrs")}
    attrs.update(layer_order=lazy.layers, layer_attrs=layer_attrs)
    for key, value in attrs.items():
        group.attrs[key] = encode_attr(value)
    jitter = lazy.jitter()
    stimuli = []
    for row, sid in enumerate(lazy.stimulus_ids):
        _check_name(sid, "stimulus id", where)
        stimulus = group.create_group(sid, track_order=True)
        if jitter is not None:
            stimulus.attrs["jitter"] = jitter[row]
        stimuli.append(stimulus)
    for name in lazy.layers:
        key = layer_key(name)
        row = 0
        for _, block in lazy.layer(name).blocks(block_bytes=block_bytes):
            for values in block:
                stimuli[row].create_dataset(key, data=values)
                row += 1


# --------------------------------------------------------------------------- import


def import_per_stimulus(
    old: PathLike,
    out: PathLike,
    models: Sequence[str] | None = None,
    *,
    options: StorageOptions | None = None,
    models_dir: PathLike | None = None,
    block_bytes: int = READ_BLOCK_BYTES,
) -> dict[str, Path]:
    """Convert a per-stimulus file into actpipe's layout; returns each model's file.

    With one model (or one chosen), ``out`` is that model's file. With several, each model
    goes to ``{models_dir}/{model}.h5`` (default: a folder named after ``out`` without its
    suffix, beside it) and ``out`` is the per-set file joining them, as in a workflow's
    ``results/activations/``. Every file appears only when complete.
    """
    out = Path(out)
    options = options or StorageOptions()
    with LazyActivations(old, cache_bytes=0) as acts:
        chosen = _choose_models(acts, models)
        if not chosen:
            raise FormatError(f"{old}: holds no model to import")
        for model in chosen:
            if acts[model].layout != PER_STIMULUS:
                raise FormatError(
                    f"{old}: model {model!r} is already in actpipe's {LAYOUT} layout; "
                    "nothing to import (copy the file, or `actpipe append` it to another)"
                )
        if len(chosen) == 1:
            return {chosen[0]: _import_model(acts[chosen[0]], out, options, block_bytes)}
        folder = Path(models_dir) if models_dir is not None else out.with_suffix("")
        files = {
            model: _import_model(acts[model], folder / f"{model}.h5", options, block_bytes)
            for model in chosen
        }
    join_activations(out, files)
    return files


def _check_stimuli(lazy: LazyModel) -> None:
    """Every stimulus of an old-layout model has the same layers (shapes are checked on read)."""
    expected = {lazy.layer(name).key for name in lazy.layers}
    with h5py.File(lazy.source_path, "r") as f:
        group = f[lazy.name] if lazy.name in f else None
        if group is None:
            return
        for sid in lazy.stimulus_ids:
            item = group[sid]
            if not isinstance(item, h5py.Group):
                raise FormatError(
                    f"{lazy.source_path}: /{lazy.name}/{sid} is a dataset, not a stimulus group; "
                    "is this a per-stimulus activation file?"
                )
            names = set(dataset_names(item))
            if names != expected:
                first = lazy.stimulus_ids[0]
                raise FormatError(
                    f"{lazy.source_path}: model {lazy.name!r}: stimulus {sid!r} has layers "
                    f"{sorted(names)} but {first!r} has {sorted(expected)}; every stimulus "
                    "needs the same layers"
                )


def _stimulus_jitter(lazy: LazyModel, n_rep: int) -> np.ndarray:
    """Jitter stored by :func:`export_per_stimulus` on stimulus groups; NaN where absent."""
    jitter = np.full((lazy.n_stimuli, n_rep, len(JITTER_FIELDS)), np.nan)
    with h5py.File(lazy.source_path, "r") as f:
        group = f[lazy.name]
        for row, sid in enumerate(lazy.stimulus_ids):
            value = group[sid].attrs.get("jitter")
            if value is not None and np.shape(value) == jitter.shape[1:]:
                jitter[row] = value
    return jitter


def _import_model(lazy: LazyModel, out: Path, options: StorageOptions, block_bytes: int) -> Path:
    where = f"{lazy.path}: model {lazy.name!r}"
    if not lazy.stimulus_ids:
        raise FormatError(f"{where} has no stimuli")
    if not lazy.layers:
        raise FormatError(f"{where}: stimulus {lazy.stimulus_ids[0]!r} holds no layer dataset")
    _check_stimuli(lazy)
    n_rep = lazy.n_replicates
    jitter = _stimulus_jitter(lazy, n_rep)
    recorded = lazy.attrs.get("layer_attrs")
    recorded = recorded if isinstance(recorded, dict) else {}
    views = {name: lazy.layer(name) for name in lazy.layers}
    row_bytes = sum(v.n_replicates * v.feature_dim * v.dtype.itemsize for v in views.values())
    step = max(1, block_bytes // max(1, row_bytes))
    with ActivationWriter(out, lazy.name, lazy.n_stimuli, n_rep, options) as writer:
        with h5py.File(lazy.source_path, "r") as f:
            first = f[lazy.name][lazy.stimulus_ids[0]]
            for name, view in views.items():
                attrs = dict(recorded.get(name, {}))
                shape = attrs.pop("original_shape", None)
                if shape is None:
                    stored = first[view.key]
                    shape = stored.shape[1:] if stored.ndim > 1 else stored.shape
                attrs = {k: v for k, v in attrs.items() if k not in _LAYER_WRITER_ATTRS}
                writer.add_layer(name, view.feature_dim, tuple(shape), attrs)
        for start in range(0, lazy.n_stimuli, step):
            stop = min(lazy.n_stimuli, start + step)
            values = {name: view.read(rows=slice(start, stop)) for name, view in views.items()}
            writer.write_rows(start, jitter[start:stop], values)
        attrs: dict[str, Any] = {k: v for k, v in lazy.attrs.items() if k not in _WRITER_ATTRS}
        attrs.setdefault("imported_from", str(lazy.path))
        return writer.finish(lazy.stimulus_ids, attrs)
