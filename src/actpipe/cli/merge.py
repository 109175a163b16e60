"""``actpipe merge OUT IN...``: one model's files on several stimulus sets or shards, joined."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="join activation or gradient files of one model into one file",
        description="Join the files of one model on different stimulus sets or shards into "
        "OUT, rows in input order. Layers are virtual datasets over the inputs (no copy; "
        "keep the inputs in place) unless --copy. Inputs whose model, layers, weights, "
        "preprocessing, jitter, seed, replicates or gradient target differ are refused, "
        "naming the difference; so is a stimulus id found in two inputs (see --namespace).",
    )
    parser.add_argument("output", metavar="OUT", help="the merged file to write")
    parser.add_argument("inputs", nargs="+", metavar="IN", help="activation or gradient files")
    parser.add_argument("--model", help="the model to merge (needed when inputs hold several)")
    parser.add_argument(
        "--copy", action="store_true", help="copy the values (a self-contained file)"
    )
    parser.add_argument(
        "--namespace",
        action="store_true",
        help="prefix every stimulus id with its input's stimulus set: {set}:{id}",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..storage.merge import merge_files
    from ..storage.reader import ModelInfo, model_names, open_file

    path = merge_files(
        args.inputs, args.output, args.model, copy=args.copy, namespace=args.namespace
    )
    with open_file(path) as f:
        (model,) = model_names(f)
    info = ModelInfo.read(path, model)
    how = "copied" if args.copy else "virtual datasets over the inputs"
    print(
        f"{path}: model {model!r}, {len(info.stimulus_ids)} stimuli from {len(args.inputs)} "
        f"file(s), {len(info.layers)} layers ({how})"
    )
    return 0
