"""ONNX files made the way other people make them: torch's exporter with its default names.

Every export here uses ``torch.onnx.export(..., dynamo=False)`` - the TorchScript exporter,
torch's default before 2.9 and the one whose tensor names (``/features/features.3/
Relu_output_0``) most files in the wild carry - with no ``input_names``, ``output_names`` or
``dynamic_axes``, so the batch axis is fixed at the example's batch. :func:`save_external`
moves the weights into external data as ``onnx.save`` does, :func:`rename_tf2onnx_style`
renames every tensor the way tf2onnx names them (``model/conv2d/Relu:0``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

EXPORTER = "torch.onnx.export(dynamo=False) (TorchScript exporter), default names, no dynamic_axes"


class Classifier(nn.Module):
    """A small CNN classifier as people write them: conv blocks, ``x.view(x.size(0), -1)``
    (exported as a Reshape whose target spells out the batch), a linear head."""

    def __init__(self, classes: int = 5, size: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
        )
        self.fc = nn.Linear(16 * (size // 2) ** 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.view(x.size(0), -1)
        return self.fc(x)


class TokenNet(nn.Module):
    """A ViT-like model: patches, a class token prepended with ``expand(x.shape[0], ...)``
    and attention-free token mixing. Its export concatenates a constant to the images, so the
    batch axis cannot be proved free: it is fed in pieces."""

    def __init__(self, dim: int = 12, classes: int = 4):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.mlp(tokens)
        return self.head(self.norm(tokens)[:, 0])


class ChannelsLast(nn.Module):
    """``inner`` taking ``(batch, height, width, 3)`` images (a TF-style graph)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 3, 1, 2).contiguous())


def export_default(
    model: nn.Module, path: Path, example: torch.Tensor | tuple[torch.Tensor, ...], **kwargs
) -> Path:
    """Export as a user would: default names, fixed shapes of ``example``."""
    args = example if isinstance(example, tuple) else (example,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), args, str(path), dynamo=False, **kwargs)
    return path


def save_external(path: Path, target: Path, location: str | None = None, **kwargs) -> Path:
    """Re-save ``path`` as ``target`` + ``location`` (default ``{target name}.data``)."""
    model = onnx.load(str(path))
    onnx.save(
        model,
        str(target),
        save_as_external_data=True,
        location=location or f"{target.name}.data",
        **kwargs,
    )
    return target


def tf2onnx_name(name: str) -> str:
    """``/features/features.3/Relu_output_0`` -> ``model/features/features.3/Relu:0``."""
    stem = name.strip("/").replace("_output_0", "")
    return f"model/{stem}:0"


def rename_tf2onnx_style(path: Path, target: Path) -> dict[str, str]:
    """Rename every tensor computed by a node (and the graph input) tf2onnx style,
    consistently in node inputs and outputs, graph inputs/outputs and value_info; returns
    ``{old: new}``."""
    model = onnx.load(str(path))
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    names = [i.name for i in graph.input if i.name not in initializers]
    names += [o for node in graph.node for o in node.output if o]
    mapping = {old: tf2onnx_name(old) for old in names}
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    for value in [*graph.input, *graph.output, *graph.value_info]:
        value.name = mapping.get(value.name, value.name)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return mapping
