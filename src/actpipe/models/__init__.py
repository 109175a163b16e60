"""Models: config blocks (:mod:`.spec`), the registry of sources, weights, layers, ONNX."""

from .layers import LayerInfo, auto_layer_names, list_layers, resolve_layer_names
from .registry import (
    ACTPIPE_MODELS,
    SOURCES,
    build_model,
    build_skeleton,
    check_architecture,
    check_model,
)
from .spec import REDUCTIONS, SOURCE_NAMES, LayerSpec, ModelError, ModelSpec
from .weights import WeightsError, read_checkpoint, state_dict_sha256

__all__ = [
    "ACTPIPE_MODELS",
    "REDUCTIONS",
    "SOURCES",
    "SOURCE_NAMES",
    "LayerInfo",
    "LayerSpec",
    "ModelError",
    "ModelSpec",
    "WeightsError",
    "auto_layer_names",
    "build_model",
    "build_skeleton",
    "check_architecture",
    "check_model",
    "list_layers",
    "read_checkpoint",
    "resolve_layer_names",
    "state_dict_sha256",
]
