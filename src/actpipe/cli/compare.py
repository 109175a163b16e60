"""``actpipe compare``: every layer of the model(s) in one file against every layer in another.

    actpipe compare FILE_A FILE_B [--model-a M] [--model-b M] [--measure cka] [--tsv OUT]

Both files are read on the stimuli they share (by id). Prints one table per measure (rows:
layers of A, columns: layers of B): linear CKA (unbiased HSIC) and RSA (Spearman correlation
of ``--distance`` RDMs; ``--measure kendall_tau_a`` or ``pearson`` too). ``--tsv`` writes every
comparison in the long format of the workflow's ``compare.tsv``; ``--out`` keeps the
``compare.h5``. FILE_A and FILE_B may be the same file (layers of one model against each other).
"""

from __future__ import annotations

import argparse
import math
from typing import Any


def register(subparsers: Any) -> None:
    from ..similarity.distances import DISTANCES

    comparisons = ("cka", "spearman", "kendall_tau_a", "pearson")

    parser = subparsers.add_parser(
        "compare",
        help="compare the layers of two activation files by CKA and RSA",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file_a", help="first activation file")
    parser.add_argument("file_b", help="second activation file (may be the same)")
    parser.add_argument("--model-a", action="append", help="model(s) of FILE_A (default: all)")
    parser.add_argument("--model-b", action="append", help="model(s) of FILE_B (default: all)")
    parser.add_argument("--layer-a", action="append", help="layer(s) of FILE_A's model")
    parser.add_argument("--layer-b", action="append", help="layer(s) of FILE_B's model")
    parser.add_argument(
        "--measure",
        action="append",
        choices=comparisons,
        help="cka, spearman, kendall_tau_a, pearson (repeat; default: cka and spearman)",
    )
    parser.add_argument(
        "--distance", choices=DISTANCES, default="correlation", help="RDM distance for RSA"
    )
    parser.add_argument("--max-stimuli", type=int, default=5000, help="RDM subsample above")
    parser.add_argument("--seed", type=int, default=0, help="seed of subsample and sketches")
    parser.add_argument(
        "--cka-method", choices=["auto", "exact", "sketch"], default="auto", help="CKA estimator"
    )
    parser.add_argument("--sketch-dim", type=int, default=256, help="sketch width of wide layers")
    parser.add_argument("--tsv", help="write every comparison to this TSV")
    parser.add_argument("--out", help="write compare.h5 here")
    parser.set_defaults(func=run)


def _table(title: str, matrix: Any, rows: list[int], cols: list[int], names: list[str]) -> None:
    print(title)
    head = [""] + [names[j] for j in cols]
    lines = [head]
    for i in rows:
        cells = [names[i]]
        for j in cols:
            v = float(matrix[i, j])
            cells.append("–" if not math.isfinite(v) else f"{v:.3f}")
        lines.append(cells)
    widths = [max(len(line[k]) for line in lines) for k in range(len(head))]
    for line in lines:
        print(
            "  ".join(
                c.rjust(w) if k else c.ljust(w)
                for k, (c, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
    print()


def run(args: argparse.Namespace) -> int:
    from ..similarity import SimilarityOptions, compare_files

    measures = tuple(args.measure or ["cka", "spearman"])
    options = SimilarityOptions(
        distances=(args.distance,),
        comparisons=measures,
        max_stimuli=args.max_stimuli,
        seed=args.seed,
        cka_method=args.cka_method,
        sketch_dim=args.sketch_dim,
        theory={},
    )
    comparison, rows_a, rows_b = compare_files(
        args.file_a,
        args.file_b,
        models_a=args.model_a,
        models_b=args.model_b,
        layers_a=args.layer_a,
        layers_b=args.layer_b,
        options=options,
        output=args.out,
        tsv=args.tsv,
    )
    t = comparison.layers
    several = len(t.models) > 2
    names = [f"{m}/{lay}" if several else lay for m, lay in zip(t.model, t.layer, strict=True)]
    a_models = sorted({t.model[i] for i in rows_a})
    b_models = sorted({t.model[i] for i in rows_b})
    print(
        f"{', '.join(a_models)} (A) vs {', '.join(b_models)} (B): CKA on "
        f"{comparison.attrs.get('n_cka_stimuli')} shared stimuli, RSA on "
        f"{len(comparison.rsa_stimulus_ids)}\n"
    )
    if comparison.cka is not None:
        kinds = sorted(set(comparison.cka_estimator))
        _table(
            f"linear CKA (unbiased HSIC; {', '.join(kinds)})", comparison.cka, rows_a, rows_b, names
        )
    for method, matrix in comparison.rsa.get(args.distance, {}).items():
        _table(f"RSA: {method} of {args.distance} RDMs", matrix, rows_a, rows_b, names)
    for path in (args.tsv, args.out):
        if path:
            print(f"wrote {path}")
    return 0
