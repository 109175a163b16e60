"""What the extraction loop runs a batch through: the :class:`Capture` protocol, and the
reduction of a layer output to one feature vector per exposure.

Two captures implement it: :class:`.torch_capture.TorchCapture` (forward hooks on a torch
module) and :class:`.onnx_capture.OnnxCapture` (an instrumented ONNX graph in onnxruntime).
"""

from __future__ import annotations

from typing import Protocol

import torch

from ..errors import LayerError
from ..models.spec import LayerSpec


class Capture(Protocol):
    """One model ready to give the reduced output of its configured layers for a batch.

    ``layers`` are the outputs stored, one dataset each (a layer with a head selector is
    stored once, without it; attention metrics are outputs of their own). ``run(inputs,
    buffers)`` does one forward pass and returns ``{layer: (batch, feature_dim)}`` in that
    order; with ``buffers`` (one ``(max_batch, feature_dim)`` float32 CPU tensor per layer)
    the features are copied into them and views returned. After a run, ``shapes`` holds each
    layer's output shape without the batch axis, ``applied`` the reduction actually applied,
    ``feature_shapes`` the shape each exposure's features are stored in when it is not
    ``(feature_dim,)`` (``(heads, dim)`` for per-head probes) and ``layer_attrs`` extra dataset
    attributes. ``remove()`` releases the model.
    """

    layers: list[LayerSpec]
    shapes: dict[str, tuple[int, ...]]
    applied: dict[str, str]
    feature_shapes: dict[str, tuple[int, ...]]
    layer_attrs: dict[str, dict[str, object]]

    def run(
        self, inputs: torch.Tensor, buffers: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]: ...

    def remove(self) -> None: ...


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


def reduce_heads(x: torch.Tensor, how: str, layer: str) -> tuple[torch.Tensor, str]:
    """Reduce a per-head probe ``(batch, heads, positions, dim)`` to ``(batch, heads, features)``.

    Positions are tokens (or, for an attention pattern ``(batch, heads, queries, keys)``, the
    queries). ``cls`` and ``cls_row`` keep position 0 (the class token; for a pattern, the
    class token's query row), ``mean``/``max`` pool over positions, ``flatten`` keeps
    everything (``positions * dim`` features per head, C-order).
    """
    if how in ("cls", "cls_row"):
        return x[:, :, 0], how
    if how == "mean":
        return x.mean(dim=2), "mean"
    if how == "max":
        return x.amax(dim=2), "max"
    if how == "flatten":
        return x.reshape(x.shape[0], x.shape[1], -1), "flatten"
    raise LayerError(f"layer {layer!r}: unknown reduce {how!r}")
