"""Models: config blocks (:mod:`.spec`), the registry of sources (:mod:`.registry`), weights
(:mod:`.weights`), layer discovery (:mod:`.layers`), ONNX graphs (:mod:`.onnx`), checks before a
run (:mod:`.check`), and the package's own architectures (:mod:`.cornet`, :mod:`.digits_cnn`)."""

from ..errors import LayerError, ModelError, WeightsError
from .check import check_model, check_models
from .layers import LayerCandidate, auto_layer_names, list_layers, resolve_layer_names
from .registry import (
    ACTPIPE_MODELS,
    SOURCE_NAMES,
    SOURCES,
    build_model,
    build_skeleton,
    check_architecture,
)
from .spec import REDUCTIONS, LayerSpec, MetricSpec, ModelSpec
from .weights import read_checkpoint, state_dict_sha256

__all__ = [
    "ACTPIPE_MODELS",
    "REDUCTIONS",
    "SOURCES",
    "SOURCE_NAMES",
    "LayerCandidate",
    "LayerError",
    "LayerSpec",
    "MetricSpec",
    "ModelError",
    "ModelSpec",
    "WeightsError",
    "auto_layer_names",
    "build_model",
    "build_skeleton",
    "check_architecture",
    "check_model",
    "check_models",
    "list_layers",
    "read_checkpoint",
    "resolve_layer_names",
    "state_dict_sha256",
]
