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

This module is the reading API's public face; the work is done by :mod:`.files` (opening
files, finding a model's data), :mod:`.metadata` (what is stored, without reading it),
:mod:`.blocks` (block reads and the cache), :mod:`.lazy` (the mappings and views) and
:mod:`.describe` (what ``actpipe inspect`` shows).
"""

from __future__ import annotations

from ..errors import ActivationKeyError
from .blocks import READ_BLOCK_BYTES
from .describe import describe_file, describe_model
from .files import (
    CHUNK_CACHE_BYTES,
    H5_SUFFIXES,
    check_file,
    check_version,
    choose_model,
    dataset_names,
    group_layout,
    model_group,
    model_names,
    open_file,
    read_ids,
)
from .lazy import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_CACHE_LIMIT,
    LayerView,
    LazyActivations,
    LazyModel,
    LazyStimulus,
    get_activation_shape,
    get_available_images,
    get_available_layers,
    get_available_models,
    iter_layer,
    load_lazy_activations,
    load_model_activations_lazy,
    read_layer,
)
from .metadata import IdSelection, ModelInfo, StoredLayer

__all__ = [
    "CHUNK_CACHE_BYTES",
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_CACHE_LIMIT",
    "H5_SUFFIXES",
    "READ_BLOCK_BYTES",
    "ActivationKeyError",
    "IdSelection",
    "LayerView",
    "LazyActivations",
    "LazyModel",
    "LazyStimulus",
    "ModelInfo",
    "StoredLayer",
    "check_file",
    "check_version",
    "choose_model",
    "dataset_names",
    "describe_file",
    "describe_model",
    "get_activation_shape",
    "get_available_images",
    "get_available_layers",
    "get_available_models",
    "group_layout",
    "iter_layer",
    "load_lazy_activations",
    "load_model_activations_lazy",
    "model_group",
    "model_names",
    "open_file",
    "read_ids",
    "read_layer",
]
