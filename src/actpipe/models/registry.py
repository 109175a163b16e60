"""The model registry: one place that turns a model's config block into a ready module.

Sources of torch modules, looked up by the ``source`` key of a model block:

- ``torchvision`` and ``timm``: architecture names of those libraries (timm names may carry a
  pretrained tag, ``vit_base_patch16_clip_224.openai``);
- ``actpipe``: the package's own architectures (:data:`ACTPIPE_MODELS`: CORnet-S, the digits CNN);
- ``python``: ``module:function`` or ``path/to/file.py:function`` returning a ``torch.nn.Module``.

``onnx`` models are not torch modules: :mod:`.onnx` instruments them and
:mod:`actpipe.extraction.onnx_capture` runs them. :data:`SOURCE_NAMES` lists every source.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ModelError, WeightsError
from ..names import did_you_mean
from .weights import (
    describe_weights_file,
    load_state_dict,
    read_checkpoint,
    select_prefix,
    state_dict_sha256,
)

if TYPE_CHECKING:
    from .spec import ModelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """How to list and build the architectures of one library.

    ``build(arch, pretrained, kwargs)`` returns a module; ``list_names`` is ``None`` for
    sources without a fixed list of names (``python``).
    """

    list_names: Callable[[], list[str]] | None
    build: Callable[[str, bool, dict[str, Any]], torch.nn.Module]
    has_pretrained: bool = True


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


ACTPIPE_MODELS: dict[str, str] = {
    "cornet_s": "actpipe.models.cornet:cornet_s",
    "digits_cnn": "actpipe.models.digits_cnn:DigitsCNN",
}
"""The package's own architectures: name -> ``module:constructor`` (imported when built)."""


def _actpipe_build(arch: str, pretrained: bool, kwargs: dict[str, Any]) -> torch.nn.Module:
    if pretrained:
        raise WeightsError(
            f"actpipe's own {arch!r} has no download; set 'weights:' to a local checkpoint file"
        )
    return import_function(ACTPIPE_MODELS[arch])(**kwargs)


def import_function(target: str) -> Callable[..., Any]:
    """The function named by ``module:function`` or ``path/to/file.py:function``."""
    module_name, sep, function_name = target.rpartition(":")
    if not sep or not module_name or not function_name:
        raise ModelError(
            f"{target!r} is not of the form 'package.module:function' or 'file.py:function'"
        )
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise ModelError(f"python file {module_name!r} does not exist")
        unique = f"actpipe_user_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(unique, path)
        if spec is None or spec.loader is None:
            raise ModelError(f"cannot import {module_name!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    function = getattr(module, function_name, None)
    if function is None or not callable(function):
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ModelError(
            f"{module_name} has no function {function_name!r}; "
            + did_you_mean(function_name, names, "names")
        )
    return function


def _python_build(target: str, pretrained: bool, kwargs: dict[str, Any]) -> torch.nn.Module:
    if pretrained:
        raise WeightsError(
            "a python: model builds its own weights; use 'weights: random' (the function is "
            "called under a seeded generator) or a local checkpoint file"
        )
    module = import_function(target)(**kwargs)
    if not isinstance(module, torch.nn.Module):
        raise ModelError(
            f"{target} returned {type(module).__name__}, not a torch.nn.Module; make the "
            "function return the model"
        )
    return module


SOURCES: dict[str, Source] = {
    "torchvision": Source(_torchvision_names, _torchvision_build),
    "timm": Source(_timm_names, _timm_build),
    "actpipe": Source(lambda: list(ACTPIPE_MODELS), _actpipe_build, has_pretrained=False),
    "python": Source(None, _python_build, has_pretrained=False),
}
"""The sources of torch modules, by the name a model block's ``source`` key gives."""

ONNX_SOURCE = "onnx"
SOURCE_NAMES: tuple[str, ...] = (*SOURCES, ONNX_SOURCE)
"""Every value of a model block's ``source`` key (the config schema lists the same)."""


def get_source(spec: ModelSpec) -> Source:
    if spec.source not in SOURCES:
        raise ModelError(
            f"model {spec.name!r}: source {spec.source!r} does not build torch modules; "
            f"torch sources are {sorted(SOURCES)}"
        )
    return SOURCES[spec.source]


def check_architecture(spec: ModelSpec) -> None:
    """Fail early, naming close matches, when the architecture is not in the source."""
    source = get_source(spec)
    if source.list_names is None:
        return
    names = source.list_names()
    arch = spec.arch
    if spec.source == "timm" and "." in arch:
        import timm

        base = arch.split(".", 1)[0]
        if base in names:
            tagged = timm.list_models(f"{base}.*", pretrained=True)
            if arch not in tagged:
                raise ModelError(
                    f"model {spec.name!r}: timm has no pretrained tag {arch!r}; "
                    + did_you_mean(arch, tagged, "tags")
                )
            return
        arch = base
    if arch not in names:
        raise ModelError(
            f"model {spec.name!r}: {spec.source} has no architecture {spec.arch!r}; "
            + did_you_mean(spec.arch, names, "names")
        )


def _instantiate(spec: ModelSpec, pretrained: bool) -> torch.nn.Module:
    where = f"model {spec.name!r}"
    try:
        return get_source(spec).build(spec.arch, pretrained, spec.kwargs)
    except (ModelError, WeightsError) as exc:
        raise type(exc)(f"{where}: {exc}") from exc
    except ImportError as exc:
        raise ModelError(
            f"{where}: cannot import {spec.arch!r} ({type(exc).__name__}: {exc}); check the "
            "module path and that it is importable (installed, or on PYTHONPATH)"
        ) from exc
    except TypeError as exc:
        raise ModelError(
            f"{where}: building {spec.arch!r} with kwargs {spec.kwargs} failed: {exc}"
        ) from exc


def build_model(spec: ModelSpec) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the model of ``spec`` in eval mode, with its weights, and describe the weights.

    ``weights`` is ``random`` (init seeded with ``seed``), ``pretrained`` (the source's own
    loader, which needs network access or a warm cache), or a path to a local checkpoint.
    """
    check_architecture(spec)
    info: dict[str, Any] = {"kind": spec.weights}
    if spec.weights == "pretrained":
        if not get_source(spec).has_pretrained:
            raise WeightsError(
                f"model {spec.name!r}: source {spec.source!r} has no pretrained download; set "
                "'weights:' to a local checkpoint file (.pt, .pth or .safetensors)"
            )
        try:
            model = _instantiate(spec, True)
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
            model = _instantiate(spec, False)
        if spec.weights == "random":
            info["seed"] = spec.seed
        else:
            where = f"model {spec.name!r}"
            state = select_prefix(read_checkpoint(spec.weights, where), spec.weights_prefix, where)
            info.update(kind="file", **describe_weights_file(spec.weights))
            info.update(load_state_dict(model, state, spec.strict, where))
            info["strict"] = spec.strict
            if spec.weights_prefix:
                info["prefix"] = spec.weights_prefix
    model.eval()
    info["state_dict_sha256"] = state_dict_sha256(model)
    return model, info


def build_skeleton(spec: ModelSpec) -> torch.nn.Module:
    """The model's modules without memory for weights (meta device), for cheap checks.

    Falls back to a normal seeded build for modules that cannot be built on the meta device.
    """
    check_architecture(spec)
    try:
        with torch.device("meta"):
            return _instantiate(spec, False).eval()
    except (ModelError, WeightsError):
        raise
    except Exception:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            return _instantiate(spec, False).eval()
