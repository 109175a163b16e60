"""``actpipe export``: write actpipe's results in the layouts the older tools read.

* ``--layout per-stimulus FILE OUT``: an activation file as ``/{model}/{stimulus_id}/{layer}``.
* ``--layout gatormind RESULTS_DIR... OUT_DIR``: parameter sets' clusters as the cluster-path
  dashboard's ``metadata.json``, ``set_NN/paths.json`` and ``set_NN/centroids.json``.
* ``--layout rsatoolbox RDMS_H5 OUT``: RDMs as rsatoolbox's ``save_rdm`` writes them.
"""

from __future__ import annotations

import argparse

RSATOOLBOX = "rsatoolbox"


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..dashboard_layout import DASHBOARD_LAYOUT, DEFAULT_EXAMPLE_KEY
    from ..storage.format import PER_STIMULUS

    parser = subparsers.add_parser(
        "export",
        help="write an activation file in the older per-stimulus layout, clusters in the "
        "cluster-path dashboard's layout, or RDMs for rsatoolbox",
        description=f"--layout {PER_STIMULUS} FILE OUT: write FILE (per-model or per-set) as "
        "OUT in the layout /{model}/{stimulus_id}/{layer}, one (n_replicates, feature_dim) "
        f"dataset per stimulus and layer, as the older tools read it. --layout "
        f"{DASHBOARD_LAYOUT} RESULTS_DIR [RESULTS_DIR ...] OUT_DIR: write the parameter sets' "
        "folders (results/clusters/{set}/{model}/{parameter_set}/, same model and stimuli) "
        "as OUT_DIR/metadata.json ({num_examples, layers, k, ...}) and "
        "OUT_DIR/set_01/paths.json (example id -> cluster at each layer; -1: dropped), "
        "OUT_DIR/set_01/centroids.json (layer -> centroid vectors), set_02, ... in the order "
        f"given. See docs/format.md. --layout {RSATOOLBOX} RDMS_H5 OUT: the RDMs of an "
        "rdms.h5 (--distance, --label) as rsatoolbox's save_rdm writes them "
        "(docs/similarity.md).",
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help=f"{PER_STIMULUS}: one activation file; {DASHBOARD_LAYOUT}: one or more "
        f"parameter set folders; {RSATOOLBOX}: one rdms.h5",
    )
    parser.add_argument(
        "out", metavar="OUT", help="the file (or, for the dashboard, the folder) to write"
    )
    parser.add_argument(
        "--layout",
        required=True,
        choices=[PER_STIMULUS, DASHBOARD_LAYOUT, RSATOOLBOX],
        help="the layout to write",
    )
    parser.add_argument("--distance", help="rsatoolbox: the RDMs of this distance (first)")
    parser.add_argument("--label", help="rsatoolbox: the condition RDMs of this label")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help=f"{PER_STIMULUS}: only this model (repeatable; default: all)",
    )
    parser.add_argument(
        "--example-key",
        default=DEFAULT_EXAMPLE_KEY,
        metavar="TEMPLATE",
        help=f"{DASHBOARD_LAYOUT}: key of each example in paths.json, from the fields {{id}}, "
        "{index}, {stimulus}, {replicate} (e.g. 'example_{id:0>4}'); default: the example id",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"{DASHBOARD_LAYOUT}: replace metadata.json and every set_* folder already in "
        "OUT_DIR (other contents are left alone)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..dashboard_layout import DASHBOARD_LAYOUT, DEFAULT_EXAMPLE_KEY, export_dashboard

    if args.layout == RSATOOLBOX:
        from ..similarity.files import export_rsatoolbox

        if len(args.sources) != 1:
            raise ValueError(f"--layout {RSATOOLBOX} exports one rdms.h5")
        out = export_rsatoolbox(args.sources[0], args.out, args.distance, args.label)
        print(f"wrote {out} (rsatoolbox.rdm.load_rdm reads it)")
        return 0
    if args.distance or args.label:
        raise ValueError(f"--distance and --label apply to --layout {RSATOOLBOX}")
    from ..storage.convert import export_per_stimulus

    if args.layout == DASHBOARD_LAYOUT:
        if args.models:
            raise ValueError("--model applies to --layout per-stimulus")
        out = export_dashboard(
            args.sources, args.out, example_key=args.example_key, force=args.force
        )
        for i, source in enumerate(args.sources, start=1):
            print(f"set_{i:02d}: {source}")
        print(f"wrote {out}")
        return 0
    if args.example_key != DEFAULT_EXAMPLE_KEY or args.force:
        raise ValueError(f"--example-key and --force apply to --layout {DASHBOARD_LAYOUT}")
    if len(args.sources) != 1:
        raise ValueError("--layout per-stimulus exports one activation file")
    out = export_per_stimulus(args.sources[0], args.out, args.models)
    print(f"wrote {out}")
    return 0
