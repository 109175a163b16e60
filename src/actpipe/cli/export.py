"""``actpipe export FILE --layout per-stimulus OUT``: write the older layout."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..storage.format import PER_STIMULUS

    parser = subparsers.add_parser(
        "export",
        help="write an activation file in the older per-stimulus layout",
        description="Write FILE (per-model or per-set) as OUT in the layout "
        "/{model}/{stimulus_id}/{layer}, one (n_replicates, feature_dim) dataset per "
        "stimulus and layer, as the older tools read it.",
    )
    parser.add_argument("file", help="an actpipe activation file")
    parser.add_argument("out", help="the file to write")
    parser.add_argument(
        "--layout",
        required=True,
        choices=[PER_STIMULUS, "rsatoolbox"],
        help="the layout to write (rsatoolbox: FILE is an rdms.h5, see docs/similarity.md)",
    )
    parser.add_argument("--distance", help="rsatoolbox: the RDMs of this distance (first)")
    parser.add_argument("--label", help="rsatoolbox: the condition RDMs of this label")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help="only this model (repeatable; default: all)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.layout == "rsatoolbox":
        from ..similarity.files import export_rsatoolbox

        out = export_rsatoolbox(args.file, args.out, args.distance, args.label)
        print(f"wrote {out} (rsatoolbox.rdm.load_rdm reads it)")
        return 0
    from ..storage.convert import export_per_stimulus

    out = export_per_stimulus(args.file, args.out, args.models)
    print(f"wrote {out}")
    return 0
