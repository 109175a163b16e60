"""The model registry: one place that turns a model's config block into a ready module.

Each source (``torchvision``, ``timm``) knows its architecture names, how to build one with
random or pretrained weights, and is looked up by the ``source`` key of a model block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._io import did_you_mean
from .spec import ModelSpec
from .weights import (
    WeightsError,
    describe_weights_file,
    load_state_dict,
    read_checkpoint,
    state_dict_sha256,
)

log = logging.getLogger(__name__)


class ModelError(ValueError):
    """A model block that cannot be turned into a model."""


@dataclass(frozen=True)
class Source:
    """How to list and build the architectures of one library."""

    list_names: Callable[[], list[str]]
    build: Callable[[str, bool, dict[str, Any]], torch.nn.Module]


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models())


def _torchvision_build(arch: str, pretrained: bool, kwargs: dict[str, Any]) -> torch.nn.Module:
    import torchvision

    return torchvision.models.get_model(arch, weights="DEFAULT" if pretrained else None, **kwargs)


def _timm_names() -> list[str]:
    import timm

    return sorted(timm.list_models())


def _timm_build(arch: str, pretrained: bool, kwargs: dict[str, Any]) -> torch.nn.Module:
    import timm

    return timm.create_model(arch, pretrained=pretrained, **kwargs)


SOURCES: dict[str, Source] = {
    "torchvision": Source(_torchvision_names, _torchvision_build),
    "timm": Source(_timm_names, _timm_build),
}


def get_source(spec: ModelSpec) -> Source:
    if spec.source not in SOURCES:
        raise ModelError(
            f"model {spec.name!r}: unknown source {spec.source!r}; "
            f"choose one of {sorted(SOURCES)}"
        )
    return SOURCES[spec.source]


def check_architecture(spec: ModelSpec) -> None:
    """Fail early, naming close matches, when the architecture is not in the source."""
    names = get_source(spec).list_names()
    if spec.arch not in names:
        raise ModelError(
            f"model {spec.name!r}: {spec.source} has no architecture {spec.arch!r}; "
            + did_you_mean(spec.arch, names, "names")
        )


def build_model(spec: ModelSpec) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the model of ``spec`` in eval mode, with its weights, and describe the weights.

    ``weights`` is ``random`` (init seeded with ``seed``), ``pretrained`` (the source's own
    loader, which needs network access or a warm cache), or a path to a local checkpoint.
    """
    source = get_source(spec)
    check_architecture(spec)
    info: dict[str, Any] = {"kind": spec.weights}
    if spec.weights == "pretrained":
        try:
            model = source.build(spec.arch, True, spec.kwargs)
        except Exception as exc:
            raise WeightsError(
                f"model {spec.name!r}: could not obtain pretrained weights for {spec.arch!r} "
                f"through {spec.source} ({type(exc).__name__}: {str(exc)[:200]}). Without "
                "network access, download the checkpoint on another machine and set "
                "'weights: /path/to/checkpoint.pth' (or .safetensors) in this model's block"
            ) from exc
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            model = source.build(spec.arch, False, spec.kwargs)
        if spec.weights == "random":
            info["seed"] = spec.seed
        else:
            state = read_checkpoint(spec.weights)
            info.update(kind="file", **describe_weights_file(spec.weights))
            info.update(load_state_dict(model, state, spec.strict, f"model {spec.name!r}"))
            info["strict"] = spec.strict
    model.eval()
    info["state_dict_sha256"] = state_dict_sha256(model)
    return model, info
