"""``actpipe append FILE SOURCE``: add models or new stimuli to an activation file."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "append",
        help="add the models or new stimuli of SOURCE to an activation file",
        description="Add what SOURCE holds to FILE without rewriting what is there: a model "
        "FILE lacks is added (a link in a per-set file, a copy otherwise); for a model FILE "
        "has, SOURCE's stimuli (all new ids, same layers) are appended to every layer.",
    )
    parser.add_argument("file", help="the activation file to add to")
    parser.add_argument("source", help="an actpipe activation file")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help="only this model (repeatable; default: all of SOURCE)",
    )
    parser.add_argument(
        "--copy",
        action="store_true",
        help="work on a copy renamed over FILE when complete (safe if killed)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..storage.append import append_file

    for line in append_file(args.file, args.source, args.models, copy=args.copy):
        print(line)
    return 0
