"""``actpipe import OLD.h5 OUT``: convert an older per-stimulus file into actpipe's layout."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..storage.format import COMPRESSIONS, DTYPES, TARGET_CHUNK_BYTES

    parser = subparsers.add_parser(
        "import",
        help="convert an older per-stimulus activation file into actpipe's layout",
        description="Convert OLD (layout /{model}/{stimulus_id}/{layer}) into actpipe's "
        "layer-major layout. With one model OUT is that model's file; with several, each "
        "model goes to DIR/{model}.h5 (--models-dir, default OUT without its suffix) and "
        "OUT is the per-set file joining them.",
    )
    parser.add_argument("old", help="the per-stimulus HDF5 file")
    parser.add_argument("out", help="the file to write")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help="only this model (repeatable; default: all)",
    )
    parser.add_argument("--models-dir", help="folder of the per-model files (several models)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="none")
    parser.add_argument(
        "--compression-level",
        type=int,
        default=4,
        choices=range(10),
        metavar="0-9",
        help="gzip level (default 4)",
    )
    parser.add_argument(
        "--chunk-bytes",
        type=int,
        default=TARGET_CHUNK_BYTES,
        help="target chunk size in bytes (default 1 MiB)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..storage.convert import import_per_stimulus
    from ..storage.format import StorageOptions

    options = StorageOptions.from_config(
        {
            "dtype": args.dtype,
            "compression": args.compression,
            "compression_level": args.compression_level,
            "chunk_bytes": args.chunk_bytes,
        }
    )
    files = import_per_stimulus(
        args.old, args.out, args.models, options=options, models_dir=args.models_dir
    )
    for model, path in files.items():
        print(f"{model}: wrote {path}")
    if len(files) > 1:
        print(f"wrote {args.out} joining {len(files)} models")
    return 0
