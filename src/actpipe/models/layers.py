"""Layer discovery: which modules a model has, their output shapes, and ``layers: auto``.

``layers: auto`` picks one documented default per family:

- timm models: the modules timm reports as feature info (``model.feature_info``): the stage
  outputs of CNNs (e.g. ``layer1``..``layer4``, ``stages.0``..``stages.3``), every block of
  ViTs (``blocks.0``..``blocks.N``);
- torchvision ResNet/ResNeXt/Wide-ResNet: ``layer1``..``layer4`` and ``avgpool``;
  VGG/AlexNet: every max-pool of ``features`` and the ReLUs/output of ``classifier``;
  ConvNeXt/EfficientNet/MobileNet and other models with a ``features`` sequence: its
  children; ViT: every ``encoder.layers`` block;
- actpipe's CORnet-S: ``V1``, ``V2``, ``V4``, ``IT``, ``decoder.avgpool``; the digits CNN:
  its three blocks, ``pool``, ``fc1``, ``fc2``;
- ONNX graphs: the output of every Conv, Gemm and MatMul node;
- anything else: the model's top-level children.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..errors import LayerError
from ..names import no_such
from .onnx import auto_tensor_names, load_graph, tensor_shapes
from .registry import build_model
from .spec import ModelSpec

LIST_HINT = "run `actpipe layers` to list them all"


@dataclass(frozen=True)
class LayerCandidate:
    """One module (or ONNX tensor) that could be captured: name, type, output shape without
    the batch axis, and how often it runs per forward pass."""

    name: str
    kind: str
    shape: tuple[int, ...] | None
    calls: int = 1


def _children(module: nn.Module, prefix: str) -> list[str]:
    return [f"{prefix}.{name}" if prefix else name for name, _ in module.named_children()]


def auto_layer_names(model: nn.Module, source: str = "", arch: str = "") -> list[str]:
    """The family default layers of a torch module (see the module docstring)."""
    from .cornet import CORblockS
    from .digits_cnn import LAYERS as DIGITS_LAYERS
    from .digits_cnn import DigitsCNN

    if isinstance(model, DigitsCNN):
        return list(DIGITS_LAYERS)
    modules = dict(model.named_modules())
    if isinstance(modules.get("V2"), CORblockS):
        return ["V1", "V2", "V4", "IT", "decoder.avgpool"]
    feature_info = getattr(model, "feature_info", None)
    if isinstance(feature_info, (list, tuple)) and feature_info:
        names = [f.get("module") for f in feature_info if isinstance(f, dict)]
        names = [n for n in names if n and n in modules]
        if names:
            return list(dict.fromkeys(names))
    if all(f"layer{i}" in modules for i in range(1, 5)):
        return [f"layer{i}" for i in range(1, 5)] + (["avgpool"] if "avgpool" in modules else [])
    features = modules.get("features")
    classifier = modules.get("classifier")
    if isinstance(features, nn.Sequential):
        pools = [
            f"features.{n}" for n, m in features.named_children() if isinstance(m, nn.MaxPool2d)
        ]
        if len(pools) >= 2:
            head = []
            if isinstance(classifier, nn.Sequential):
                head = [
                    f"classifier.{n}"
                    for n, m in classifier.named_children()
                    if isinstance(m, nn.ReLU)
                ]
                last = list(classifier.named_children())[-1][0]
                head.append(f"classifier.{last}")
            return pools + head
        return _children(features, "features")
    layers = modules.get("encoder.layers")
    if layers is not None:
        return _children(layers, "encoder.layers")
    return _children(model, "")


def resolve_layer_names(spec: ModelSpec, model: nn.Module) -> list[str]:
    """The module names to capture: those of the configured layers, or the family default
    for ``layers: auto`` (whose layers go by their module names)."""
    if spec.auto_layers:
        return auto_layer_names(model, spec.source, spec.arch)
    return [layer.module for layer in spec.layers]


def check_layer_names(model: nn.Module, names: Sequence[str], model_name: str) -> None:
    """Raise :class:`LayerError` (with close names) for a name that is not a module of
    ``model`` (the empty name, the model itself, is not a layer)."""
    modules = [n for n, _ in model.named_modules() if n]
    known = set(modules)
    for name in names:
        if name not in known:
            raise LayerError(no_such("layer", name, modules, f"model {model_name!r}", LIST_HINT))


def list_torch_layers(model: nn.Module, size: int, channels: int = 3) -> list[LayerCandidate]:
    """Every named module, its type and output shape on one ``(1, 3, size, size)`` input."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    calls: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_module: nn.Module, _inputs: Any, output: Any, name: str = name) -> None:
            calls[name] = calls.get(name, 0) + 1
            if name in shapes:
                return
            tensor = output[0] if isinstance(output, (tuple, list)) and output else output
            shapes[name] = tuple(tensor.shape[1:]) if isinstance(tensor, torch.Tensor) else None

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model(torch.zeros(1, channels, size, size))
    finally:
        for handle in handles:
            handle.remove()
    return [
        LayerCandidate(name, type(module).__name__, shapes.get(name), calls.get(name, 0))
        for name, module in model.named_modules()
        if name
    ]


def list_layers(spec: ModelSpec) -> tuple[list[LayerCandidate], list[str]]:
    """All layers of ``spec``'s model with output shapes, and the ``layers: auto`` choice.

    Torch models are built with seeded random weights (the shapes do not depend on the
    weights); ONNX models are run once with every tensor as an output.
    """
    size = spec.preprocess.size or 224
    if spec.is_onnx:
        graph = load_graph(spec.arch, f"model {spec.name!r}")
        kinds = {out: node.op_type for node in graph.graph.node for out in node.output}
        auto = auto_tensor_names(graph)
        shapes = tensor_shapes(spec.arch, spec.preprocess.size, layout=spec.input_layout)
        return [LayerCandidate(n, kinds.get(n, "?"), s) for n, s in shapes.items()], auto
    model, _ = build_model(replace(spec, weights="random"))
    return list_torch_layers(model, size), auto_layer_names(model, spec.source, spec.arch)
