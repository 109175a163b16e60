"""Activations and their gradients for every configured layer: one forward and one backward
pass per batch.

For a batch of exposures with targets ``t_b`` (:mod:`.targets`), layer output ``a`` (one
exposure's output ``a_b`` of shape ``original_shape``) and gradient ``g_b = dt_b/da_b`` (same
shape), the pass returns per layer, reduced with the layer's reduction ``R``
(:func:`~actpipe.extraction.capture.reduce_output`):

* ``gradient``: ``R(g_b)``;
* ``activation_x_gradient``: ``R(a_b (.) g_b)``, the element-wise product taken on the full
  output *before* the reduction: ``mean`` gives ``mean_p a_b[c, p] g_b[c, p]`` over positions
  ``p`` (not the product of the means), ``flatten`` every product, ``cls`` the products at
  token 0, ``max`` the largest product over positions.

The batch's targets are summed before the one backward pass: in eval mode exposures do not
interact, so the gradient of the sum with respect to ``a_b`` is ``dt_b/da_b``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import LayerError, ModelError
from ..extraction.capture import first_tensor, reduce_output
from ..models.layers import check_layer_names
from ..models.spec import LayerSpec
from ..results import ACTIVATION_X_GRADIENT, GRADIENT, QUANTITIES
from .settings import Target
from .targets import select


@dataclass
class GradientBatch:
    """What one batch gives: ``values[quantity][layer]`` ``(batch, feature_dim)`` (float32,
    float64 for a float64 model),
    and per exposure the target's output index, its value and the top-logit index."""

    values: dict[str, dict[str, torch.Tensor]]
    target_index: torch.Tensor
    target_value: torch.Tensor
    predicted_index: torch.Tensor
    n_outputs: int


def _replace_first(output: Any, tensor: torch.Tensor) -> Any:
    """``output`` with its tensor (or the first element of a tuple/list) replaced."""
    if isinstance(output, torch.Tensor):
        return tensor
    if isinstance(output, tuple):
        return (tensor, *output[1:])
    return [tensor, *output[1:]]


class GradientCapture:
    """Forward hooks that keep each configured layer's output in the autograd graph.

    In the hook of a layer with output ``a``: when ``a`` is not yet part of a graph (no
    captured layer before it), it is detached and made a leaf requiring grad, so nothing
    before the first captured layer is recorded; the hook then returns a *copy* of ``a`` to
    the rest of the network, so an in-place operation after the layer (``ReLU(inplace=True)``)
    changes the copy and never ``a``, and the gradient is the one with respect to the layer's
    own output. Parameters are frozen (``requires_grad_(False)``): only activations need
    gradients.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        layers: Sequence[LayerSpec],
        model_name: str,
        store: Sequence[str] = QUANTITIES,
    ) -> None:
        check_layer_names(model, [layer.module for layer in layers], model_name)
        unknown = [q for q in store if q not in QUANTITIES]
        if unknown or not store:
            raise ValueError(f"store must list some of {QUANTITIES}, got {list(store)}")
        modules = dict(model.named_modules())
        model.requires_grad_(False)
        self.model = model
        self.model_name = model_name
        self.layers = list(layers)
        self.store = tuple(q for q in QUANTITIES if q in store)
        self.outputs: dict[str, torch.Tensor] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.applied: dict[str, str] = {}
        self.autocast: Any = contextlib.nullcontext
        self._handles = [
            modules[layer.module].register_forward_hook(self._hook(layer)) for layer in self.layers
        ]

    def _hook(self, layer: LayerSpec):
        def hook(module, inputs, output):
            if layer.name in self.outputs:
                raise LayerError(
                    f"model {self.model_name!r}: module {layer.module!r} runs more than once per "
                    "forward pass, so its output is ambiguous; choose one of its submodules"
                )
            a = first_tensor(output)
            if not a.requires_grad:
                a = a.detach().requires_grad_(True)
            self.outputs[layer.name] = a
            return _replace_first(output, a.clone())

        return hook

    def run(
        self, inputs: torch.Tensor, target: Target, label_index: torch.Tensor | None = None
    ) -> GradientBatch:
        """One forward and one backward pass over ``inputs`` for every layer.

        ``label_index``: the class index of every exposure (targets ``label`` and ``loss``).
        Raises :class:`LayerError` for a layer that did not run or whose output does not
        reach the model's output.
        """
        self.outputs = {}
        names = [layer.name for layer in self.layers]
        try:
            with torch.enable_grad():
                with self.autocast():
                    output = self.model(inputs)
                logits = self._logits(output)
                value, index = select(target, logits, label_index)
                missing = [name for name in names if name not in self.outputs]
                if missing:
                    raise LayerError(
                        f"model {self.model_name!r}: layer(s) {missing} did not run in the "
                        "forward pass; pick modules on the model's forward path"
                    )
                tensors = [self.outputs[name] for name in names]
                grads: Sequence[torch.Tensor | None] = (
                    torch.autograd.grad(value.sum(), tensors, allow_unused=True)
                    if value.requires_grad
                    else [None] * len(tensors)
                )
            off_path = [name for name, g in zip(names, grads, strict=True) if g is None]
            if off_path:
                raise LayerError(
                    f"model {self.model_name!r}: layer(s) {off_path} are not on the path to the "
                    "model's output (the output does not depend on them), so they have no "
                    "gradient; remove them from the layers of this model's gradient pass"
                )
            values: dict[str, dict[str, torch.Tensor]] = {q: {} for q in self.store}
            for layer, a, g in zip(self.layers, tensors, grads, strict=True):
                assert g is not None
                dtype = torch.promote_types(a.dtype, torch.float32)  # float32 or float64
                a32, g32 = a.detach().to(dtype), g.to(dtype)
                if GRADIENT in self.store:
                    values[GRADIENT][layer.name], applied = reduce_output(
                        g32, layer.reduce, layer.name
                    )
                if ACTIVATION_X_GRADIENT in self.store:
                    values[ACTIVATION_X_GRADIENT][layer.name], applied = reduce_output(
                        a32 * g32, layer.reduce, layer.name
                    )
                self.shapes[layer.name] = tuple(a.shape[1:])
                self.applied[layer.name] = applied
            return GradientBatch(
                values,
                index.detach(),
                value.detach().float(),
                logits.detach().argmax(dim=1),
                int(logits.shape[1]),
            )
        finally:
            self.outputs = {}

    def _logits(self, output: Any) -> torch.Tensor:
        try:
            logits = first_tensor(output)
        except TypeError as exc:
            raise ModelError(
                f"model {self.model_name!r}: gradients need an output tensor of logits, but the "
                f"model {exc}"
            ) from exc
        if logits.dim() != 2:
            raise ModelError(
                f"model {self.model_name!r}: gradients need (batch, n_outputs) logits, but the "
                f"model's output has shape {tuple(logits.shape)}; wrap the model so it returns "
                "class scores (source: python)"
            )
        return logits

    def remove(self) -> None:
        """Remove the hooks (the parameters stay frozen)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
