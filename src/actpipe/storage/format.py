"""The HDF5 layout of activation files, in one place for writer and readers.

Layer-major layout of a per-model file (``format_version`` 2)::

    /                         attrs: format_version, layout="layer-major", producer
    /{model}/                 attrs: provenance (model, weights, preprocess, jitter, seed, ...)
    /{model}/stimulus_ids     (n_stimuli,) UTF-8 strings
    /{model}/jitter           (n_stimuli, n_replicates, 4) float64: dx_px, dy_px, rotation_deg,
                              scale
    /{model}/layers/{key}     (n_stimuli, n_replicates, feature_dim) float32 or float16
                              attrs: name, module, original_shape, reduce, reduce_applied,
                              feature_dim

``{key}`` is the layer key of the layer's name (:func:`actpipe.names.layer_key`: the name
itself unless it holds characters other than letters, digits, ``_ . -``); the name is the
``name`` attribute. Version 1 stored the name itself as the dataset name.

A per-set file joins per-model files with external links ``/{model} -> {set}/{model}.h5``.

A gradient file (``results/gradients/{set}/{model}.h5``) has the same layout, rows and jitter
as the activation file of the same (set, model), plus::

    /{model}/layers/{layer}                 the primary quantity: activation x gradient when
                                            stored, else the gradient (attribute quantity)
    /{model}/activation_x_gradient/{layer}  activation (x) gradient w.r.t. the layer's full
                                            output, then reduced with the layer's reduction
    /{model}/gradient/{layer}               the gradient, reduced with the layer's reduction
    /{model}/target_index, target_value, predicted_index    (n_stimuli, n_replicates)

The group named after the primary quantity is a soft link to ``layers``; the other quantity,
when stored too, is a group of its own. See ``docs/format.md`` for every attribute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..names import layer_key, layer_name
from ..results import (  # noqa: F401 (the gradient file's group names, part of the layout)
    ACTIVATION_X_GRADIENT,
    GRADIENT,
    QUANTITIES,
)

FORMAT_VERSION = 2
LAYOUT = "layer-major"
PER_STIMULUS = "per-stimulus"  # the older layout /{model}/{stimulus_id}/{layer} (read, export)
LAYERS_GROUP = "layers"
STIMULUS_IDS = "stimulus_ids"
JITTER = "jitter"
JITTER_FIELDS = ("dx_px", "dy_px", "rotation_deg", "scale")
TARGET_INDEX = "target_index"
TARGET_VALUE = "target_value"
PREDICTED_INDEX = "predicted_index"
PER_EXPOSURE = (TARGET_INDEX, TARGET_VALUE, PREDICTED_INDEX)
"""Per-exposure records of a gradient file: ``(n_stimuli, n_replicates)`` each."""
TARGET_CHUNK_BYTES = 1 << 20
COMPRESSIONS = ("none", "lzf", "gzip")
DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class StorageOptions:
    """How layer datasets are stored: dtype, compression and chunking."""

    dtype: str = "float32"
    compression: str = "none"
    compression_level: int = 4
    chunk_bytes: int = TARGET_CHUNK_BYTES

    @classmethod
    def from_config(cls, block: dict[str, Any] | None) -> StorageOptions:
        block = dict(block or {})
        opts = cls(**block)
        if opts.dtype not in DTYPES:
            raise ValueError(f"storage.dtype {opts.dtype!r}: choose one of {DTYPES}")
        if opts.compression not in COMPRESSIONS:
            raise ValueError(
                f"storage.compression {opts.compression!r}: choose one of {COMPRESSIONS}"
            )
        return opts

    def dataset_kwargs(self) -> dict[str, Any]:
        if self.compression == "gzip":
            return {"compression": "gzip", "compression_opts": int(self.compression_level)}
        if self.compression == "lzf":
            return {"compression": "lzf"}
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "compression": self.compression,
            "compression_level": self.compression_level,
            "chunk_bytes": self.chunk_bytes,
        }


def chunk_shape(
    n_rows: int,
    n_replicates: int,
    feature_dim: int,
    itemsize: int,
    target: int = TARGET_CHUNK_BYTES,
) -> tuple[int, int, int]:
    """A chunk of about ``target`` bytes holding whole rows (split features if one row is big).

    A row larger than ``target`` is cut into the fewest equal pieces of at most ``target``
    bytes, so no chunk is mostly padding (HDF5 allocates whole chunks).
    """
    row_bytes = max(1, n_replicates * feature_dim * itemsize)
    if row_bytes <= target:
        rows = max(1, min(max(n_rows, 1), target // row_bytes))
        return (rows, n_replicates, feature_dim)
    pieces = -(-row_bytes // target)
    return (1, n_replicates, max(1, -(-feature_dim // pieces)))


def encode_attr(value: Any) -> Any:
    """Attributes hold numbers and strings natively; anything nested is stored as JSON text."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    if value is None:
        return "null"
    return value


def decode_attr(value: Any) -> Any:
    """Inverse of :func:`encode_attr` for strings that hold JSON."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str) and (value[:1] in ("{", "[") or value == "null"):
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            return value
    return value


def decode_value(value: Any) -> Any:
    """An attribute as plain Python: JSON text decoded, numpy scalars and arrays as lists."""
    value = decode_attr(value)
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


def layer_path(model: str, layer: str) -> str:
    """Where the dataset of layer ``layer`` (its name) of ``model`` is in a per-model file."""
    return f"/{model}/{LAYERS_GROUP}/{layer_key(layer)}"


def stored_name(key: str, attrs: Any) -> str:
    """The name of the layer stored under dataset name ``key``: its ``name`` attribute, else
    the name ``key`` encodes, else ``key`` itself (files of other writers, version 1)."""
    name = decode_attr(attrs.get("name")) if attrs is not None else None
    if isinstance(name, str) and name:
        return name
    try:
        return layer_name(key)
    except ValueError:
        return key
