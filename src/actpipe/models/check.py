"""Checking model entries before any image is read: the one place models are checked.

:func:`check_model` checks one parsed block, :func:`check_models` every block of a config.
The workflow's ``onstart`` handler runs ``python -m actpipe.models.check MODELS_JSON LOG
[--skip PATH ...]`` (a separate process, so the Snakefile never imports torch): it exits 1
with one line per bad entry on stderr (and in ``LOG``), 0 otherwise. Paths given with
``--skip`` are model files the workflow makes itself: entries using them are checked without
the file (architecture and layers only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._io import write_json
from ..errors import ModelError
from .layers import check_layer_names, resolve_layer_names
from .onnx import check_onnx
from .registry import build_skeleton
from .spec import ModelSpec
from .weights import check_state_dict, read_checkpoint, select_prefix


def check_model(spec: ModelSpec) -> dict[str, Any]:
    """Everything about a model block that can be checked before any image is read.

    The architecture exists (close names otherwise), the python function imports and returns
    a module, the configured layers exist, and a local checkpoint matches the architecture
    (keys and shapes). ONNX entries are parsed and their tensor names checked. Raises
    :class:`ModelError`/``WeightsError``/``LayerError`` naming the model entry; returns
    a summary with the resolved layer names.
    """
    if spec.is_onnx:
        return check_onnx(spec)
    model = build_skeleton(spec)
    modules = resolve_layer_names(spec, model)
    check_layer_names(model, modules, spec.name)
    layers = modules if spec.auto_layers else spec.layer_names
    summary: dict[str, Any] = {"source": spec.source, "arch": spec.arch, "layers": layers}
    if spec.weights not in ("random", "pretrained"):
        where = f"model {spec.name!r}"
        state = select_prefix(
            read_checkpoint(spec.weights, where, mmap=True), spec.weights_prefix, where
        )
        check_state_dict(model, state, spec.strict, where)
        summary["weights"] = str(Path(spec.weights).resolve())
    return summary


def check_entries(
    models: dict[str, dict[str, Any]], produced: Collection[str] = frozenset()
) -> tuple[dict[str, Any], list[str]]:
    """``(summary per entry, problems)`` for every model entry (see :func:`check_model`).

    ``produced``: model files the workflow makes itself (checked without the file).
    """
    summary: dict[str, Any] = {}
    problems: list[str] = []
    for name, block in models.items():
        try:
            spec = ModelSpec.from_config(name, block)
            if spec.weights in produced:
                spec = replace(spec, weights="random")
            if spec.is_onnx and spec.arch in produced:
                summary[name] = {"source": "onnx", "path": spec.arch, "produced": True}
                continue
            summary[name] = check_model(spec)
        except (ValueError, OSError) as exc:
            problems.append(str(exc))
    return summary, problems


def problems_report(problems: list[str]) -> str:
    """The message listing every entry that cannot be used, one line each."""
    return (
        f"{len(problems)} model entr{'y' if len(problems) == 1 else 'ies'} of the config "
        "cannot be used:\n" + "\n".join(f"- {p}" for p in problems)
    )


def check_models(
    models: dict[str, dict[str, Any]],
    output: str | os.PathLike[str],
    produced: Collection[str] = frozenset(),
) -> dict[str, Any]:
    """Check every model block of a config; raise :class:`ModelError` listing every problem.

    Builds each model without weights (meta device), checks architecture names, python
    entries, ONNX files and tensor names, layer names and local checkpoints (keys and
    shapes). On success writes ``output``: a JSON summary with the resolved layer names of
    each model, and returns it.
    """
    summary, problems = check_entries(models, produced)
    if problems:
        raise ModelError(problems_report(problems))
    write_json(output, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actpipe.models.check")
    parser.add_argument("models", help="the config's models block as JSON")
    parser.add_argument("log", help="where to write the report")
    parser.add_argument("--skip", action="append", default=[], help="a file the workflow makes")
    args = parser.parse_args(argv)
    try:
        check_models(json.loads(args.models), args.log, set(args.skip))
    except ModelError as exc:
        Path(args.log).write_text(f"{exc}\n", encoding="utf-8")
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
