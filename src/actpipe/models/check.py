"""``python -m actpipe.models.check MODELS_JSON LOG [--skip PATH ...]``: check every model
entry before a workflow runs (the workflow's ``onstart`` handler calls this).

Exits 1 with one line per bad entry on stderr (and in ``LOG``); exits 0 otherwise. Paths
given with ``--skip`` are model files the workflow makes itself: entries using them are
checked without the file (architecture and layers only).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any


def check_entries(
    models: dict[str, dict[str, Any]], produced: set[str] = frozenset()
) -> tuple[dict[str, Any], list[str]]:
    """``(summary per entry, problems)`` for every model entry (see ``check_model``)."""
    from .registry import check_model
    from .spec import ModelSpec

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actpipe.models.check")
    parser.add_argument("models", help="the config's models block as JSON")
    parser.add_argument("log", help="where to write the report")
    parser.add_argument("--skip", action="append", default=[], help="a file the workflow makes")
    args = parser.parse_args(argv)
    summary, problems = check_entries(json.loads(args.models), set(args.skip))
    if problems:
        report = (
            f"{len(problems)} model entr{'y' if len(problems) == 1 else 'ies'} of the "
            "config cannot be used:\n" + "\n".join(f"- {p}" for p in problems)
        )
    else:
        report = json.dumps(summary, indent=1)
    with open(args.log, "w", encoding="utf-8") as fh:
        fh.write(report + "\n")
    if problems:
        print(report, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
