"""``actpipe rdm``: RDMs of layers of one activation file, outside the workflow.

    actpipe rdm FILE --model M --layer L [--distance correlation] [--labels DIR] [--out R.h5]

Prints, per layer and distance, the number of stimuli and the range of dissimilarities (and,
with ``--labels``, the Spearman correlation with each label's theory RDM); ``--out`` writes
the ``rdms.h5`` the workflow writes (docs/similarity.md), which ``actpipe export --layout
rsatoolbox`` turns into an rsatoolbox file.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    from ..similarity.distances import DISTANCES

    parser = subparsers.add_parser(
        "rdm",
        help="representational dissimilarity matrices of layers of an activation file",
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
        help="layer (repeat; default: every layer, in order)",
    )
    parser.add_argument(
        "--distance",
        action="append",
        dest="distances",
        choices=DISTANCES,
        help="dissimilarity (repeat; default: correlation)",
    )
    parser.add_argument("--labels", help="labels.csv (or its folder): condition RDMs, theory")
    parser.add_argument("--max-stimuli", type=int, default=5000, help="subsample above (5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsample (0)")
    parser.add_argument("--balance-by", help="label column the subsample is balanced over")
    parser.add_argument("--out", help="write the RDMs to this rdms.h5")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..similarity import RDMFile, SimilarityOptions, compute_rdms, rsa, theory_rdm
    from ..similarity.options import DEFAULT_THEORY

    options = SimilarityOptions(
        distances=tuple(args.distances or ["correlation"]),
        max_stimuli=args.max_stimuli,
        seed=args.seed,
        balance_by=args.balance_by,
        theory=dict(DEFAULT_THEORY),
    )
    with tempfile.TemporaryDirectory(prefix="actpipe-rdm-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "rdms.h5"
        compute_rdms(
            args.file,
            out,
            model=args.model,
            stimuli=args.labels,
            options=options,
            layers=args.layers,
        )
        with RDMFile(out) as rdms:
            labels = rdms.labels
            theories = {
                name: theory_rdm(labels.columns[name], options.theory_of(name), name)
                for name in labels.names
                if len(set(labels.columns[name]) - {""}) >= 2
            }
            sub = rdms.attrs["subsample"]
            print(
                f"model {rdms.model!r}: {sub['n']} of {sub['n_total']} stimuli"
                + (
                    f" (seeded subsample, balanced by {sub['balanced_by']})"
                    if sub["subsampled"]
                    else ""
                )
            )
            head = ["layer", "distance", "features", "min", "median", "max"]
            head += [f"rho {name}" for name in theories]
            rows = [head]
            for layer in rdms.layers:
                for distance in rdms.distances:
                    rdm = rdms.stimulus_rdm(layer, distance)
                    finite = rdm[np.isfinite(rdm)]
                    cells = [
                        layer,
                        distance,
                        str(rdms.attrs["feature_dims"][layer]),
                        *(
                            f"{v:.4g}"
                            for v in (
                                (finite.min(), np.median(finite), finite.max())
                                if finite.size
                                else (np.nan,) * 3
                            )
                        ),
                    ]
                    cells += [f"{rsa(rdm, t, 'spearman'):.3f}" for t in theories.values()]
                    rows.append(cells)
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if args.out:
            print(f"wrote {out}")
    return 0
