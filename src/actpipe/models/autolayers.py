"""``python -m actpipe.models.autolayers '{"model": name, "block": {...}}'``: print the
layer names ``layers: auto`` picks for that model block, as a JSON list.

The workflow runs this once per model block with ``layers: auto`` (in a separate process, so
parsing the Snakefile never imports torch) and caches the answer.
"""

from __future__ import annotations

import json
import sys


def resolve(model: str, block: dict) -> list[str]:
    """The layers of ``block`` (resolving ``auto`` with the model built on the meta device)."""
    from .layers import resolve_layer_names
    from .onnx import load_graph, resolve_onnx_layers
    from .registry import build_skeleton
    from .spec import ModelSpec

    spec = ModelSpec.from_config(model, block)
    if spec.is_onnx:
        graph = load_graph(spec.arch, f"model {model!r}")
        return resolve_onnx_layers(spec, graph)
    return resolve_layer_names(spec, build_skeleton(spec))


def main(argv: list[str] | None = None) -> int:
    request = json.loads((argv or sys.argv[1:])[0])
    print(json.dumps(resolve(request["model"], request["block"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
