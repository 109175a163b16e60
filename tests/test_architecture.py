"""The structure of the package: imports run one way, at module and at package level.

Every ``import`` statement of every module under ``src/actpipe`` is read with ``ast``
(function-local imports included, ``TYPE_CHECKING`` blocks excluded) and the graph of
imports between actpipe modules must have no cycle; neither may the graph between the
package's stages (``actpipe.models``, ``actpipe.storage``, ... and top-level modules).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import actpipe

SRC = Path(actpipe.__file__).resolve().parent
ROOT = "actpipe"


def module_names() -> dict[str, Path]:
    """Every module of the package: dotted name -> file (packages as their __init__)."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The actpipe modules that module ``name`` imports (resolved to existing modules)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        # "from .x import y" may name a module (x.y) or an attribute of x.
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            if stem == ROOT or stem.startswith(ROOT + "."):
                for alias in node.names:
                    candidate = f"{stem}.{alias.name}"
                    add(candidate if candidate in modules else stem)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def stage_of(module: str) -> str:
    """``actpipe.models.onnx`` -> ``actpipe.models``; top-level modules are their own stage."""
    parts = module.split(".")
    return ".".join(parts[:2])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_the_walker_sees_every_kind_of_import(tmp_path):
    code = (
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "from .c import thing\n"
        "import actpipe.d\n"
        "if TYPE_CHECKING:\n"
        "    from .e import E\n"
        "def f():\n"
        "    from ..x.y import z\n"
    )
    path = tmp_path / "a.py"
    path.write_text(code)
    modules = {
        "actpipe.p.a",
        "actpipe.p.b",
        "actpipe.p.c",
        "actpipe.d",
        "actpipe.p.e",
        "actpipe.x.y",
    }
    found = imports_of("actpipe.p.a", path, modules)
    assert found == {"actpipe.p.b", "actpipe.p.c", "actpipe.d", "actpipe.x.y"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_stages():
    stages: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        stage = stage_of(module)
        stages.setdefault(stage, set()).update(stage_of(t) for t in targets if stage_of(t) != stage)
    cycle = find_cycle(stages)
    assert cycle is None, "stages import each other: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", sorted(module_names()))
def test_every_module_imports(module):
    importlib.import_module(module)
