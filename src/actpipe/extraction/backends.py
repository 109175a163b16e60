"""Opening a model for extraction: torch hooks or onnxruntime, behind one interface.

:func:`open_backend` returns a :class:`Backend` whose ``capture`` is a
:class:`~.capture.Capture`; loading, jitter, writing and resume in :mod:`.run` do not depend
on which one it is.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..devices import select_device
from ..models.layers import resolve_layer_names
from ..models.registry import build_model
from ..models.spec import ModelSpec
from .capture import Capture
from .onnx_capture import OnnxCapture
from .torch_capture import TorchCapture

log = logging.getLogger(__name__)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Backend:
    """A model ready to capture its layers, and what the run records about it."""

    spec: ModelSpec
    capture: Capture
    device: torch.device
    weights: dict[str, Any]
    runtime: dict[str, Any] = field(default_factory=dict)

    @property
    def pin_memory(self) -> bool:
        return self.device.type == "cuda" and not self.spec.is_onnx

    @property
    def channels_last(self) -> bool:
        return bool(self.runtime.get("channels_last"))

    def prepare(self, inputs: torch.Tensor) -> torch.Tensor:
        """Move a batch to the model's device (and memory format)."""
        if self.spec.is_onnx:
            return inputs
        inputs = inputs.to(self.device, non_blocking=self.pin_memory)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    def close(self) -> None:
        self.capture.remove()


def autocast_context(requested: str, device: torch.device) -> tuple[Any, str]:
    """The autocast context manager factory for ``requested`` and what is actually applied.

    Autocast is applied on CUDA only; elsewhere the model runs in float32 and ``none`` is
    recorded as applied.
    """
    if requested in (None, "", "none"):
        return contextlib.nullcontext, "none"
    if device.type != "cuda":
        log.warning(
            "autocast %s is applied on CUDA only; running in float32 on %s", requested, device
        )
        return contextlib.nullcontext, "none"
    dtype = AUTOCAST_DTYPES[requested]
    return functools.partial(torch.autocast, device_type="cuda", dtype=dtype), requested


def open_backend(
    spec: ModelSpec,
    device_name: str = "auto",
    autocast: str = "none",
    channels_last: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> Backend:
    """Build ``spec``'s model (torch or onnxruntime) and hook its layers.

    The model block's own ``device``, ``autocast`` and ``channels_last`` override the
    arguments. ``layers: auto`` is resolved here; the returned ``spec`` lists the layers.
    """
    device, autocast, channels_last = run_settings(spec, device_name, autocast, channels_last)
    if spec.is_onnx:
        capture = OnnxCapture(spec, cache_dir, str(device), threads)
        resolved = (
            spec.with_layer_names([layer.name for layer in capture.layers])
            if spec.auto_layers
            else spec
        )
        weights = {
            "kind": "onnx",
            "path": os.path.abspath(spec.arch),
            **capture.checksum.describe(),
        }
        runtime = {
            "backend": "onnxruntime",
            "providers": capture.providers,
            "instrumented": str(capture.path),
            **capture.describe(),
            "autocast": "none",
            "autocast_requested": autocast or "none",
            "channels_last": False,
        }
        if autocast not in (None, "none"):
            log.warning("model %r: autocast does not apply to onnxruntime; ignored", spec.name)
        return Backend(resolved, capture, device, weights, runtime)
    torch_model = open_torch_model(spec, device, autocast, channels_last)
    capture = TorchCapture(torch_model.module, torch_model.spec.layers, spec.name)
    capture.autocast = torch_model.autocast
    return Backend(torch_model.spec, capture, device, torch_model.weights, torch_model.runtime)


def run_settings(
    spec: ModelSpec, device_name: str = "auto", autocast: str = "none", channels_last: bool = False
) -> tuple[torch.device, str, bool]:
    """``(device, autocast, channels_last)`` of a run: the model block's own ``device``,
    ``autocast`` and ``channels_last`` override the run-wide settings given."""
    device = select_device(spec.device or device_name)
    if spec.autocast is not None:
        autocast = spec.autocast
    if spec.channels_last is not None:
        channels_last = bool(spec.channels_last)
    return device, autocast, channels_last


@dataclass
class TorchModel:
    """A torch model built from its block and placed on its device, without hooks.

    ``spec`` lists the layers (``layers: auto`` resolved); ``autocast`` is the context
    manager factory of the forward pass; ``weights`` and ``runtime`` are what a run records.
    """

    spec: ModelSpec
    module: torch.nn.Module
    device: torch.device
    weights: dict[str, Any]
    runtime: dict[str, Any]
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]

    def prepare(self, inputs: torch.Tensor) -> torch.Tensor:
        """Move a batch to the model's device (and memory format)."""
        inputs = inputs.to(self.device, non_blocking=self.device.type == "cuda")
        if self.runtime["channels_last"]:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs


def open_torch_model(
    spec: ModelSpec, device: torch.device, autocast: str = "none", channels_last: bool = False
) -> TorchModel:
    """Build ``spec``'s torch model in eval mode on ``device``, without hooks (settings as
    resolved by :func:`run_settings`)."""
    model, weights = build_model(spec)
    names = resolve_layer_names(spec, model)
    resolved = spec.with_layer_names(names) if spec.auto_layers else spec
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    context, applied = autocast_context(autocast, device)
    runtime = {
        "backend": "torch",
        "autocast": applied,
        "autocast_requested": autocast or "none",
        "channels_last": channels_last,
        "pin_memory": device.type == "cuda",
    }
    return TorchModel(resolved, model, device, weights, runtime, context)
