"""Capturing named layers in one forward pass with forward hooks, reduced on the fly."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from .._io import did_you_mean
from ..models.spec import LayerSpec


class LayerError(ValueError):
    """A layer that the model does not have, or whose output cannot be reduced as asked."""


class _AllCaptured(Exception):
    """Raised inside the last hook so the rest of the network is not computed."""


def first_tensor(output: object) -> torch.Tensor:
    """A module's output tensor; for tuple/list outputs (e.g. attention) the first element."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"module returned {type(output).__name__}, not a tensor")


def reduce_output(x: torch.Tensor, how: str, layer: str) -> tuple[torch.Tensor, str]:
    """Turn one layer output ``(batch, ...)`` into features ``(batch, feature_dim)``.

    ``flatten`` keeps every value (C-order). ``mean``/``max`` pool over positions: spatial
    axes of a 4-D ``(B, C, H, W)`` output (and any further axes), the token axis of a 3-D
    ``(B, tokens, dim)`` output. ``cls`` keeps token 0 of a 3-D output. A 2-D output is
    already a feature vector and is kept as it is (recorded as ``reduce_applied: none``).
    Returns the features and the reduction actually applied.
    """
    if how == "flatten" or x.dim() == 2:
        return x.reshape(x.shape[0], -1), ("flatten" if how == "flatten" else "none")
    if how == "cls":
        if x.dim() != 3:
            raise LayerError(
                f"layer {layer!r}: 'cls' needs a (batch, tokens, dim) output, got shape "
                f"{tuple(x.shape)}; use 'mean', 'max' or 'flatten'"
            )
        return x[:, 0, :], "cls"
    if x.dim() == 3:
        dims: tuple[int, ...] = (1,)
    else:
        dims = tuple(range(2, x.dim()))
    if how == "mean":
        return x.mean(dim=dims), "mean"
    if how == "max":
        return x.amax(dim=dims), "max"
    raise LayerError(f"layer {layer!r}: unknown reduce {how!r}")


class LayerCapture:
    """Forward hooks on named modules that keep each module's reduced output.

    Use :meth:`run` to do one forward pass and get ``{layer: (batch, feature_dim)}`` plus
    the per-example original shapes. The forward pass stops as soon as every layer has
    been captured, so modules after the last requested layer are not computed.
    """

    def __init__(self, model: torch.nn.Module, layers: Sequence[LayerSpec], model_name: str):
        modules = dict(model.named_modules())
        for layer in layers:
            if layer.name not in modules or layer.name == "":
                names = [n for n in modules if n]
                raise LayerError(
                    f"model {model_name!r} has no layer {layer.name!r}; "
                    + did_you_mean(layer.name, names, "layer names")
                    + " (run `actpipe layers` to list them all)"
                )
        self.model = model
        self.model_name = model_name
        self.layers = list(layers)
        self.features: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] | None = None
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.applied: dict[str, str] = {}
        self.early_stop = True
        self.autocast = contextlib.nullcontext
        self._handles = [
            modules[layer.name].register_forward_hook(self._hook(layer)) for layer in self.layers
        ]

    def _hook(self, layer: LayerSpec):
        def hook(module, inputs, output):
            if layer.name in self.features:
                raise LayerError(
                    f"model {self.model_name!r}: module {layer.name!r} runs more than once per "
                    "forward pass, so its output is ambiguous; choose one of its submodules"
                )
            x = first_tensor(output).detach()
            features, applied = reduce_output(x, layer.reduce, layer.name)
            if self.buffers is not None:
                # Copy into a reused host buffer: the layer output can be freed at once and
                # its memory reused by the rest of the forward pass.
                target = self.buffers[layer.name][: features.shape[0]]
                target.copy_(features)
                features = target
            elif features.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
                # A view of the output: a later in-place op (ReLU(inplace=True)) would
                # change it.
                features = features.clone()
            self.features[layer.name] = features
            self.shapes[layer.name] = tuple(x.shape[1:])
            self.applied[layer.name] = applied
            if self.early_stop and len(self.features) == len(self.layers):
                raise _AllCaptured

        return hook

    def run(
        self, inputs: torch.Tensor, buffers: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """One forward pass; returns the reduced features of every layer, in config order.

        With ``buffers`` (one ``(max_batch, feature_dim)`` float32 CPU tensor per layer) the
        features are copied into them and views of the buffers are returned.
        """
        self.features = {}
        self.buffers = buffers
        try:
            with self.autocast():
                self.model(inputs)
        except _AllCaptured:
            pass
        missing = [layer.name for layer in self.layers if layer.name not in self.features]
        if missing:
            raise LayerError(
                f"model {self.model_name!r}: layer(s) {missing} did not run in the forward pass; "
                "pick modules on the model's forward path"
            )
        return {layer.name: self.features[layer.name] for layer in self.layers}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
