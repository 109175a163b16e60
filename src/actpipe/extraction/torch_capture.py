"""Capturing named layers of a torch module in one forward pass with forward hooks, reduced
on the fly (the torch :class:`~.capture.Capture`)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from ..errors import LayerError
from ..models.layers import check_layer_names
from ..models.spec import LayerSpec
from .capture import first_tensor, reduce_output


class _AllCaptured(Exception):
    """Raised inside the last hook so the rest of the network is not computed."""


class TorchCapture:
    """Forward hooks on named modules that keep each module's reduced output.

    Use :meth:`run` to do one forward pass and get ``{layer: (batch, feature_dim)}`` plus
    the per-example original shapes. The forward pass stops as soon as every layer has
    been captured, so modules after the last requested layer are not computed.
    """

    def __init__(self, model: torch.nn.Module, layers: Sequence[LayerSpec], model_name: str):
        check_layer_names(model, [layer.module for layer in layers], model_name)
        modules = dict(model.named_modules())
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
            modules[layer.module].register_forward_hook(self._hook(layer)) for layer in self.layers
        ]

    def _hook(self, layer: LayerSpec):
        def hook(module, inputs, output):
            if layer.name in self.features:
                raise LayerError(
                    f"model {self.model_name!r}: module {layer.module!r} runs more than once per "
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
