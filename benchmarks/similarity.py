"""Similarity at scale: all pairwise CKAs and every layer's RDMs vs reading the layers once.

    python benchmarks/similarity.py              # 10,000 stimuli x 10 layers of 512-4,096
    python benchmarks/similarity.py --scale 0.1  # 1,000 stimuli: a quick check
    python benchmarks/similarity.py --accuracy   # also the exact CKA of the widest pair

Synthesises an activation file (float32, ``--replicates`` jittered replicates, layers sharing
a low-rank signal so that CKA is far from 0 and 1) plus a ``labels.csv`` of 10 classes, then
runs each part in its own child process and reports its wall time and peak resident memory
(``ru_maxrss`` of that process):

* ``read``: every layer read once, block by block (the file is in the page cache, as it is
  for the parts after it);
* ``cka``: linear CKA between all pairs of layers, as ``compare_layers`` computes it
  (similarity defaults: exact while within ``exact_max_gflop``, else layers wider than
  ``2 x sketch_dim`` sketched);
* ``rdms``: ``compute_rdms`` on the file: every layer's stimulus RDMs (on a 5,000-stimulus
  class-balanced subsample) for ``--distances`` and the condition RDMs of the label.

Targets: CKA over all pairs <= 5x one read, peak RSS < 2 GB. Figures of one run; no
assertions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

DIMS = (512, 896, 1280, 1664, 2048, 2432, 2816, 3200, 3584, 4096)


def synthesise(path: Path, n: int, replicates: int, seed: int = 0) -> list[str]:
    """Write the benchmark's activation file and labels.csv (in row batches)."""
    from actpipe.storage import ActivationWriter

    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 10, n)
    centres = rng.standard_normal((10, 24))
    mixing = [rng.standard_normal((24, d)).astype(np.float32) / 4 for d in DIMS]
    ids = [f"stim_{i:06d}" for i in range(n)]
    with ActivationWriter(path, "bench", n, replicates) as writer:
        for name, d in zip(names(), DIMS, strict=True):
            writer.add_layer(name, d, (d,), {"reduce": "none", "reduce_applied": "none"})
        step = 500
        for start in range(0, n, step):
            stop = min(n, start + step)
            latent = centres[classes[start:stop]] + rng.standard_normal((stop - start, 24))
            values = {}
            for name, w, d in zip(names(), mixing, DIMS, strict=True):
                base = (latent @ w.astype(np.float64)).astype(np.float32)
                noise = rng.standard_normal((stop - start, replicates, d), dtype=np.float32)
                values[name] = np.maximum(base[:, None, :] + 0.5 * noise, 0.0)
            writer.write_rows(start, np.zeros((stop - start, replicates, 4)), values)
        writer.finish(ids, {"model": {"name": "bench"}, "stimulus_set": "bench"})
    with open(path.parent / "labels.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["stimulus_id", "class"])
        out.writerows([sid, int(c)] for sid, c in zip(ids, classes, strict=True))
    return ids


def names() -> list[str]:
    return [f"layer{i}" for i in range(len(DIMS))]


# --------------------------------------------------------------------------- parts


def part_read(path: Path) -> dict:
    from actpipe import load_lazy_activations

    total = 0
    with load_lazy_activations(path, cache_bytes=0) as acts:
        for name in names():
            for _, block in acts["bench"].layer(name).blocks():
                total += block.nbytes
    return {"bytes": total}


def cka_inputs(acts, model: str = "bench") -> list:
    from actpipe.similarity import LayerInput

    lazy = acts[model]
    out = []
    for name in names():
        view = lazy.layer(name).replicate_mean()

        def read(positions: np.ndarray, view=view) -> np.ndarray:
            return view.read(rows=positions, dtype=np.float64)

        out.append(LayerInput(model, name, view.feature_dim, read))
    return out


def part_cka(path: Path, sketch_dim: int) -> dict:
    from actpipe import load_lazy_activations
    from actpipe.similarity import SimilarityOptions, cka_matrix

    options = SimilarityOptions(sketch_dim=sketch_dim).cka_options()
    with load_lazy_activations(path, cache_bytes=0) as acts:
        n = acts["bench"].n_stimuli
        result = cka_matrix(cka_inputs(acts), n, options)
    return {
        "estimator": result.estimator,
        "cost": result.cost,
        "matrix": result.matrix.tolist(),
    }


def part_exact_pair(path: Path) -> dict:
    """The exact CKA of the two widest layers (the reference for the sketch's accuracy)."""
    from actpipe import load_lazy_activations
    from actpipe.similarity import CKAOptions, cka_matrix

    with load_lazy_activations(path, cache_bytes=0) as acts:
        n = acts["bench"].n_stimuli
        inputs = cka_inputs(acts)[-2:]
        result = cka_matrix(inputs, n, CKAOptions(method="exact", memory_bytes=3 << 30))
    return {"value": float(result.matrix[0, 1])}


def part_rdms(path: Path, distances: list[str]) -> dict:
    from actpipe.similarity import RDMFile, compute_rdms

    out = path.parent / "rdms.h5"
    compute_rdms(path, out, stimuli=path.parent, options={"distances": distances})
    with RDMFile(out) as rdms:
        sub = rdms.attrs["subsample"]
    size = out.stat().st_size
    out.unlink()
    return {"n_rdm_stimuli": sub["n"], "file_bytes": size}


def child(args: argparse.Namespace) -> None:
    import logging

    from threadpoolctl import threadpool_limits

    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        threadpool_limits(limits=args.threads)
    started = time.perf_counter()
    path = Path(args.file)
    if args.part == "read":
        out = part_read(path)
    elif args.part == "cka":
        out = part_cka(path, args.sketch_dim[0])
    elif args.part == "exact":
        out = part_exact_pair(path)
    else:
        out = part_rdms(path, args.distances)
    out["seconds"] = time.perf_counter() - started
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def run_part(
    part: str, path: Path, args: argparse.Namespace, sketch_dim: int | None = None
) -> dict:
    command = [
        sys.executable,
        __file__,
        "--part",
        part,
        "--file",
        str(path),
        "--sketch-dim",
        str(sketch_dim if sketch_dim is not None else args.sketch_dim[0]),
        "--threads",
        str(args.threads or 0),
        "--distances",
        *args.distances,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"part {part} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 10,000 stimuli")
    parser.add_argument("--replicates", type=int, default=2, help="replicates per stimulus (2)")
    parser.add_argument(
        "--sketch-dim",
        type=int,
        nargs="+",
        default=[256, 128],
        help="similarity.cka.sketch_dim values to time (the first is the target's; 256 128)",
    )
    parser.add_argument(
        "--distances", nargs="+", default=["correlation", "crossnobis"], help="RDM distances"
    )
    parser.add_argument("--accuracy", action="store_true", help="exact CKA of the widest pair")
    parser.add_argument(
        "--threads", type=int, default=0, help="BLAS threads per part (default: all cores)"
    )
    parser.add_argument("--keep", help="write the synthetic file into this folder and keep it")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        child(args)
        return
    n = max(100, int(round(10_000 * args.scale)))
    with tempfile.TemporaryDirectory(prefix="actpipe-bench-similarity-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "bench.h5"
        t0 = time.perf_counter()
        synthesise(path, n, args.replicates)
        size = path.stat().st_size
        print(
            f"synthetic file: {n} stimuli x {args.replicates} replicates x {len(DIMS)} layers "
            f"({DIMS[0]}-{DIMS[-1]} features), float32, {size / 2**30:.2f} GiB, written in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        load = os.getloadavg()[0]
        print(
            f"machine: {os.cpu_count()} cores, load average {load:.1f} at start, BLAS threads "
            f"{args.threads or 'all'}"
        )
        run_part("read", path, args)  # warm the page cache: every part reads a cached file
        read = run_part("read", path, args)
        ckas = [(k, run_part("cka", path, args, k)) for k in args.sketch_dim]
        rdms = run_part("rdms", path, args)
        rows = [("read every layer once", read)]
        rows += [(f"CKA, all 45 pairs + self, k={k}", out) for k, out in ckas]
        rows.append((f"RDMs ({', '.join(args.distances)})", rdms))
        print(f"\n{'part':36} {'wall s':>8} {'x read':>7} {'peak RSS MB':>12}")
        for label, out in rows:
            print(
                f"{label:36} {out['seconds']:8.2f} {out['seconds'] / read['seconds']:7.2f} "
                f"{out['peak_rss_mb']:12.0f}"
            )
        for k, cka in ckas:
            cost = cka["cost"]
            sketched = sum(1 for e in cka["estimator"] if e != "exact")
            print(
                f"\nCKA k={k}: {sketched} of {len(DIMS)} layers sketched, {cost['passes']} "
                f"pass(es), {cost['gflop']:.0f} GFLOP (exact would be "
                f"{cost['exact_gflop_estimate']:.0f}), accumulators "
                f"{cost['accumulator_bytes'] / 2**20:.0f} MB"
            )
        print(
            f"RDMs: {rdms['n_rdm_stimuli']} stimuli per stimulus RDM, rdms.h5 "
            f"{rdms['file_bytes'] / 2**20:.0f} MB"
        )
        cka = ckas[0][1]
        target_time = cka["seconds"] <= 5 * read["seconds"]
        target_rss = max(max(c["peak_rss_mb"] for _, c in ckas), rdms["peak_rss_mb"]) < 2048
        print(
            f"targets (k={ckas[0][0]}): CKA <= 5x read: {'met' if target_time else 'NOT met'} "
            f"({cka['seconds'] / read['seconds']:.2f}x); peak RSS < 2 GB: "
            f"{'met' if target_rss else 'NOT met'}"
        )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        if args.accuracy:
            exact = run_part("exact", path, args)
            for k, out in ckas:
                value = out["matrix"][-2][-1]
                how = out["estimator"][-1]
                print(
                    f"accuracy k={k}: CKA of the two widest layers {value:.4f} ({how}) vs "
                    f"{exact['value']:.4f} exact (error {value - exact['value']:+.4f})"
                )
            print(f"(the exact value took {exact['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
