"""``actpipe cluster``: cluster layers of one activation file outside the workflow.

    actpipe cluster FILE --model M --layer L --clusters 50 --kmeans --agglomerative --leaders

Each chosen method becomes a parameter set ``{method}_k{clusters}`` written under
``--out/{model}/{parameter_set}/`` exactly as the workflow writes
``results/clusters/{set}/{model}/{parameter_set}/`` (per-layer files, paths, transitions,
centroids, metadata, quality table); a summary of the quality table is printed.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

METHOD_FLAGS = ("kmeans", "minibatch_kmeans", "agglomerative", "leaders", "spectral")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="cluster layers of an activation file (kmeans, minibatch_kmeans, agglomerative, "
        "leaders, spectral)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="activation file (per-model, joined per-set or merged)")
    parser.add_argument("--model", help="model in the file (default: the only one)")
    parser.add_argument(
        "--layer",
        action="append",
        dest="layers",
        metavar="LAYER",
        help="layer to cluster (repeat; default: every layer, in order)",
    )
    parser.add_argument("--clusters", "-k", type=int, help="number of clusters k")
    for name in METHOD_FLAGS:
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest="methods",
            action="append_const",
            const=name,
            help=f"run {name}",
        )
    parser.add_argument(
        "--threshold",
        type=float,
        help="leaders: distance threshold T (default: found by bisection from --clusters)",
    )
    parser.add_argument(
        "--linkage",
        choices=["ward", "average", "complete"],
        default=None,
        help="agglomerative linkage (ward)",
    )
    parser.add_argument("--replicates", choices=["mean", "each"], default="mean")
    parser.add_argument("--standardize", action="store_true", help="z-score every feature")
    parser.add_argument("--pca", type=int, metavar="D", help="reduce to D dimensions by PCA")
    parser.add_argument("--nonfinite", choices=["error", "drop"], default="error")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels", help="labels.csv (or its folder) to score ARI/NMI/purity")
    parser.add_argument("--out", default="clusters", help="output folder (default: ./clusters)")
    parser.set_defaults(func=run)


def parameter_sets(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The parameter sets the command line asks for, named ``{method}_k{k}``."""
    methods = args.methods or ["kmeans"]
    if args.clusters is None and not (methods == ["leaders"] and args.threshold is not None):
        raise ValueError("give --clusters K (or --threshold T with --leaders only)")
    common: dict[str, Any] = {
        "seed": args.seed,
        "replicates": args.replicates,
        "standardize": args.standardize,
        "nonfinite": args.nonfinite,
    }
    if args.pca:
        common.update(reduce="pca", n_components=args.pca)
    if args.clusters is not None:
        common["k"] = args.clusters
    sets = {}
    for method in dict.fromkeys(methods):
        params = {"method": method, **common}
        if method == "leaders" and args.threshold is not None:
            params["threshold"] = args.threshold
        if method == "agglomerative" and args.linkage:
            params["linkage"] = args.linkage
        suffix = f"k{args.clusters}" if args.clusters is not None else f"t{args.threshold:g}"
        sets[f"{method}_{suffix}"] = params
    return sets


def run(args: argparse.Namespace) -> int:
    from ..aggregation import aggregate_clusters
    from ..clustering import cluster_layer
    from ..names import layer_key, no_such
    from ..results import LAYER_CLUSTERS_DIR
    from ..storage.reader import choose_model, get_available_layers, get_available_models

    model = choose_model(args.file, get_available_models(args.file), args.model)
    available = get_available_layers(args.file, model)
    layers = args.layers or available
    unknown = [layer for layer in layers if layer not in available]
    if unknown:
        raise ValueError(no_such("layer", unknown, available, f"{args.file}: model {model!r}"))
    for name, params in parameter_sets(args).items():
        out = Path(args.out) / model / name
        files = []
        for layer in layers:
            target = out / LAYER_CLUSTERS_DIR / f"{layer_key(layer)}.h5"
            cluster_layer(args.file, model, layer, params, target, name)
            files.append(target)
        aggregate_clusters(files, out, args.file, args.labels, {"source": "actpipe cluster"})
        print(f"{name}: {out}")
        with open(out / "quality.tsv", encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                scores = [
                    f"{key}={row[key]}"
                    for key in row
                    if key.startswith(("ari_", "nmi_", "purity_")) and row[key]
                ]
                print(
                    f"  {row['layer']}: {row['n_clusters']} clusters, silhouette "
                    f"{row['silhouette'] or '-'}, Davies-Bouldin {row['davies_bouldin'] or '-'}"
                    f", sizes {row['size_min']}..{row['size_max']}"
                    + (f", {' '.join(scores)}" if scores else "")
                )
    return 0
