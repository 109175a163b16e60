"""``actpipe layers MODEL``: hookable module names (or ONNX tensors) and their output shapes.

``MODEL`` is ``source:name`` (``timm:vit_base_patch16_224``, ``torchvision:resnet50``,
``actpipe:cornet_s``, ``python:package.module:function``, ``onnx:path/to/model.onnx``), a path
to an ``.onnx`` file, or the name of a model entry of a config file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEFAULT_CONFIGS = ("config/config.yaml",)
PANEL_GLOB = "config/panels/*.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "layers",
        help="list a model's layer names with their output shapes",
        description="Build the model (seeded random weights; shapes do not depend on them), "
        "run one dummy image through it and list every module (or ONNX tensor) with its "
        "output shape. Entries marked * are what 'layers: auto' picks.",
    )
    parser.add_argument(
        "model",
        help="source:name (timm:resnet50, torchvision:vgg19, actpipe:cornet_s, "
        "python:pkg.mod:function, onnx:model.onnx), an .onnx path, or a config model name",
    )
    parser.add_argument(
        "--config",
        action="append",
        help="config file(s) to look the model name up in (default: config/config.yaml "
        "and config/panels/*.yaml)",
    )
    parser.add_argument("--size", type=int, help="input side of the dummy image")
    parser.add_argument("--kwargs", help="constructor arguments as JSON, e.g. '{\"img_size\": 64}'")
    parser.add_argument("--auto", action="store_true", help="print only the 'layers: auto' choice")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def _config_block(name: str, configs: list[str] | None) -> dict[str, Any] | None:
    import yaml

    paths = (
        [Path(p) for p in configs]
        if configs
        else [*[Path(p) for p in DEFAULT_CONFIGS], *sorted(Path().glob(PANEL_GLOB))]
    )
    for path in paths:
        if not path.is_file():
            if configs:
                raise ValueError(f"config file {str(path)!r} does not exist")
            continue
        config = yaml.safe_load(path.read_text()) or {}
        block = (config.get("models") or {}).get(name)
        if block is not None:
            return block
    return None


def model_block(text: str, configs: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """``(entry name, model block)`` for a ``source:name`` spec, an .onnx path or a config name."""
    from ..models import SOURCE_NAMES

    block = _config_block(text, configs)
    if block is not None:
        return text, dict(block)
    if text.endswith(".onnx") and ":" not in text:
        return Path(text).stem, {"source": "onnx", "path": text, "layers": "auto"}
    source, sep, name = text.partition(":")
    if sep and source in SOURCE_NAMES:
        if source == "onnx":
            return Path(name).stem, {"source": "onnx", "path": name, "layers": "auto"}
        return name.rsplit(":", 1)[-1], {"source": source, "name": name, "layers": "auto"}
    raise ValueError(
        f"{text!r} is neither source:name (source one of {list(SOURCE_NAMES)}), an .onnx "
        "file, nor a model entry of the config files"
    )


def input_text(spec: Any) -> str:
    """The input the listing ran on: ``3x{size}x{size}``, or an ONNX graph's declared input
    with how its batch is fed."""
    size = spec.preprocess.size
    if not spec.is_onnx:
        return f"3x{size}x{size}"
    from ..models.onnx import load_graph
    from ..models.onnx_input import image_input, shape_text

    graph_input = image_input(load_graph(spec.arch, spec.name), spec.name, spec.input_layout)
    batch = graph_input.fixed_batch
    fed = f"fixed batch {batch}" if batch else "free batch"
    return f"{graph_input.name!r} {shape_text(graph_input.shape)} ({graph_input.layout}, {fed})"


def run(args: argparse.Namespace) -> int:
    from ..models import ModelSpec, list_layers

    name, block = model_block(args.model, args.config)
    block = (
        {**block, "layers": "auto", "weights": "random"}
        if block.get("source") != "onnx"
        else {**block, "layers": "auto"}
    )
    if args.kwargs:
        block["kwargs"] = {**(block.get("kwargs") or {}), **json.loads(args.kwargs)}
    if args.size:
        pre = block.get("preprocess", "auto")
        pre = {"preset": pre} if isinstance(pre, str) else dict(pre)
        block["preprocess"] = {**pre, "size": args.size, "resize": args.size}
    spec = ModelSpec.from_config(name, block)
    layers, auto = list_layers(spec)
    if args.auto:
        print(json.dumps(auto) if args.json else "\n".join(auto))
        return 0
    if args.json:
        print(
            json.dumps(
                {
                    "model": name,
                    "auto": auto,
                    "layers": [
                        {
                            "name": info.name,
                            "type": info.kind,
                            "shape": list(info.shape) if info.shape is not None else None,
                            "calls": info.calls,
                        }
                        for info in layers
                    ],
                },
                indent=1,
            )
        )
        return 0
    chosen = set(auto)
    rows = [["", "name", "type", "output shape"]]
    for info in layers:
        shape = (
            "not run"
            if info.calls == 0
            else (
                ("x".join(str(s) for s in info.shape) or "scalar")
                if info.shape is not None
                else ("(no batch axis)" if spec.is_onnx else "(not a tensor)")
            )
        )
        if info.calls > 1:
            shape += f" (runs {info.calls}x: ambiguous)"
        rows.append(["*" if info.name in chosen else "", info.name, info.kind, shape])
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print(f"{name} ({spec.source}: {spec.arch}), input {input_text(spec)}; * = layers: auto")
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0
