"""Models: config blocks (:mod:`.spec`), the registry of sources, and weights loading."""

from .registry import SOURCES, ModelError, build_model, check_architecture
from .spec import REDUCTIONS, LayerSpec, ModelSpec
from .weights import WeightsError, read_checkpoint, state_dict_sha256

__all__ = [
    "REDUCTIONS",
    "SOURCES",
    "LayerSpec",
    "ModelError",
    "ModelSpec",
    "WeightsError",
    "build_model",
    "check_architecture",
    "read_checkpoint",
    "state_dict_sha256",
]
