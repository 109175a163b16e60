"""``actpipe inspect FILE``: models, stimuli, layers and provenance of an activation file."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show the models, stimuli, layers and provenance of an activation file",
        description="Show what an activation file holds: its format, each model's stimulus "
        "count, replicates, layers (shape, dtype, size on disk) and provenance attributes. "
        "Reads metadata only.",
    )
    parser.add_argument("file", help="a per-model, per-set or per-stimulus (older) HDF5 file")
    parser.add_argument("--model", help="only this model")
    parser.add_argument(
        "--show-layers",
        action="store_true",
        help="one line per layer: shape, dtype, chunks, compression, size on disk",
    )
    parser.add_argument("--json", action="store_true", help="print everything as JSON")
    parser.set_defaults(func=run)


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _value(value: Any, width: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= width else text[: width - 3] + "..."


def _table(rows: list[list[str]], indent: str = "    ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def format_description(info: dict[str, Any], show_layers: bool) -> str:
    lines = [
        f"{info['path']}: {info['kind']} file, {info['layout']} layout, format_version "
        f"{info['format_version']}, {human_bytes(info['size_bytes'])}",
    ]
    for key in ("producer", "exported_from"):
        if info["attrs"].get(key):
            lines.append(f"  {key}: {info['attrs'][key]}")
    lines.append(f"  models: {', '.join(info['model_names']) or 'none'}")
    for model in info["models"]:
        lines.append("")
        if "error" in model:
            lines.append(f"model {model['name']}: ERROR {model['error']}")
            continue
        link = f" (linked: {model['link']})" if model["link"] else ""
        lines.append(f"model {model['name']}{link}")
        lines.append(
            f"  stimuli: {model['n_stimuli']}  replicates: {model['n_replicates']}  "
            f"layers: {model['n_layers']}  on disk: {human_bytes(model['storage_bytes'])}"
        )
        if show_layers and model["layers"]:
            # The dataset a layer is stored as (its layer key) and the module or tensor it
            # captures are shown when some layer's differ from its name.
            keyed = any(
                layer.get("key", layer["name"]) != layer["name"] for layer in model["layers"]
            )
            renamed = any(
                layer["attrs"].get("module", layer["name"]) != layer["name"]
                for layer in model["layers"]
            )
            rows = [
                ["layer"]
                + (["stored as"] if keyed else [])
                + (["module"] if renamed else [])
                + ["shape", "dtype", "chunks", "compression", "on disk"]
            ]
            for layer in model["layers"]:
                chunks = "x".join(map(str, layer["chunks"])) if layer.get("chunks") else "-"
                if layer.get("virtual"):
                    chunks = "virtual"
                compression = layer["compression"]
                if layer.get("compression_opts") is not None:
                    compression += f" {layer['compression_opts']}"
                rows.append(
                    [layer["name"]]
                    + ([layer.get("key", layer["name"])] if keyed else [])
                    + ([str(layer["attrs"].get("module", layer["name"]))] if renamed else [])
                    + [
                        "x".join(map(str, layer["shape"])),
                        layer["dtype"],
                        chunks,
                        compression,
                        human_bytes(layer["storage_bytes"]),
                    ]
                )
            lines.append("  layers (n_stimuli x n_replicates x feature_dim):")
            lines.extend(_table(rows))
        elif model["layers"]:
            names = [layer["name"] for layer in model["layers"]]
            more = f", ... ({len(names)} in all)" if len(names) > 8 else ""
            shown = ", ".join(names[:8]) + more
            lines.append(f"  layers: {shown}  (--show-layers for shapes and sizes)")
        provenance = {k: v for k, v in model["attrs"].items() if k not in ("layer_attrs",)}
        if provenance:
            lines.append("  attributes:")
            lines.extend(f"    {key}: {_value(value)}" for key, value in provenance.items())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..storage.reader import describe_file

    info = describe_file(args.file, args.model)
    if args.json:
        print(json.dumps(info, indent=1, default=str))
    else:
        print(format_description(info, args.show_layers))
    return 1 if any("error" in model for model in info["models"]) else 0
