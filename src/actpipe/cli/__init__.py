"""The ``actpipe`` command: one entry point, one module per subcommand.

Each module in :data:`COMMANDS` defines ``register(subparsers)``, which adds its parser and
sets ``func`` (taking the parsed arguments, returning an exit code). The commands are thin
layers over the same library functions the workflow uses.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .._version import __version__

COMMANDS: tuple[str, ...] = (
    "inspect",
    "validate",
    "export",
    "import_",
    "append",
    "merge",
    "layers",
    "cluster",
    "serve",
    "rdm",
    "compare",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actpipe",
        description="Activations of neural networks on stimulus folders: inspect, convert, "
        "cluster, compare.",
    )
    parser.add_argument("--version", action="version", version=f"actpipe {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, OSError) as exc:
        print(f"actpipe {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
