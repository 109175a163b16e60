"""``actpipe validate FILE``: structural checks; non-zero exit with the list of problems."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check an activation file's structure and values",
        description="Check that every layer has one row per stimulus, stimulus ids are unique, "
        "replicate counts agree, values are finite and the attributes are present. Exits 1 "
        "and lists the problems if there are errors (or warnings, with --strict).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="activation file(s)")
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..storage.validate import format_problems, validate_file

    status = 0
    for path in args.files:
        problems = validate_file(path)
        errors = [p for p in problems if p.severity == "error"]
        failed = bool(errors) or (args.strict and bool(problems))
        if problems:
            print(format_problems(problems))
        if failed:
            status = 1
            print(
                f"{path}: INVALID ({len(errors)} error(s), "
                f"{len(problems) - len(errors)} warning(s))"
            )
        else:
            warned = f" ({len(problems)} warning(s))" if problems else ""
            print(f"{path}: OK{warned}")
    return status
