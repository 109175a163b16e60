"""``actpipe import OLD OUT``: convert activations of the older tools into actpipe's layout.

OLD is either an HDF5 file in the older per-stimulus layout ``/{model}/{stimulus_id}/{layer}``
or a directory in the per-example NumPy layout ``{layer}/{example_id}.npy``.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..storage.format import COMPRESSIONS, DTYPES, TARGET_CHUNK_BYTES

    parser = subparsers.add_parser(
        "import",
        help="convert activations of the older tools (per-stimulus HDF5, per-example .npy "
        "folders) into actpipe's layout",
        description="Convert OLD into actpipe's layer-major layout. OLD is an HDF5 file in "
        "the per-stimulus layout /{model}/{stimulus_id}/{layer}: with one model OUT is that "
        "model's file; with several, each model goes to DIR/{model}.h5 (--models-dir, "
        "default OUT without its suffix) and OUT is the per-set file joining them. Or OLD is "
        "a directory with one sub-folder per layer, each holding one {example_id}.npy per "
        "example: OUT is one model's file (model name: --model, default the directory's "
        "name), examples in natural order (2 before 10), layers in the order of the "
        "directory's metadata.json 'layers' list if present, else in natural order of the "
        "folder names. See docs/format.md.",
    )
    parser.add_argument(
        "old", help="the per-stimulus HDF5 file, or the directory of per-layer .npy folders"
    )
    parser.add_argument("out", help="the file to write")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help="HDF5: only this model (repeatable; default: all). Directory: the name to give "
        "the model (default: the directory's name)",
    )
    parser.add_argument("--models-dir", help="HDF5: folder of the per-model files (several models)")
    parser.add_argument(
        "--layer",
        action="append",
        dest="layers",
        metavar="LAYER",
        help="directory: import only this layer folder (repeatable, in this order; default: "
        "every layer folder)",
    )
    parser.add_argument(
        "--replicates-first",
        action="store_true",
        help="directory: the first axis of every array counts exposures of the example "
        "(replicates); default: each file is one exposure",
    )
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
    from ..storage.npy_layout import import_npy_layout, is_npy_layout

    options = StorageOptions.from_config(
        {
            "dtype": args.dtype,
            "compression": args.compression,
            "compression_level": args.compression_level,
            "chunk_bytes": args.chunk_bytes,
        }
    )
    if is_npy_layout(args.old):
        if args.models_dir:
            raise ValueError("--models-dir applies to HDF5 files; a directory is one model")
        if args.models and len(args.models) > 1:
            raise ValueError(f"{args.old}: a directory is one model; give one --model name")
        name = args.models[0] if args.models else None
        path = import_npy_layout(
            args.old,
            args.out,
            name,
            layers=args.layers,
            replicates_first=args.replicates_first,
            options=options,
        )
        print(f"wrote {path}")
        return 0
    if args.layers or args.replicates_first:
        raise ValueError(
            f"{args.old}: --layer and --replicates-first apply to a directory of .npy folders"
        )
    files = import_per_stimulus(
        args.old, args.out, args.models, options=options, models_dir=args.models_dir
    )
    for model, path in files.items():
        print(f"{model}: wrote {path}")
    if len(files) > 1:
        print(f"wrote {args.out} joining {len(files)} models")
    return 0
