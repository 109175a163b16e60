"""Streaming mini-batch k-means at growing sizes: time per row and peak memory.

    .venv/bin/python benchmarks/cluster_scaling.py               # 20k, 100k, 200k rows
    .venv/bin/python benchmarks/cluster_scaling.py --scale 0.05  # quick check

1. Synthetic layers of 4,096 features (50 Gaussian clusters, float32) with 20,000, 100,000 and
   200,000 rows (times ``--scale``) are written in actpipe's format (the largest is about
   3.3 GB), block by block.
2. Each is clustered by ``minibatch_kmeans`` (k = 50, the library defaults otherwise) through
   ``actpipe.clustering.cluster_layer`` in a fresh process, which reports its wall time and
   its peak resident memory (``ru_maxrss``, everything included: interpreter, libraries,
   reads). Printed: seconds per 1,000 rows and its ratio to the smallest size (1.0 = linear
   scaling), and the peak memory against the 1 GB target.
3. Quality on two blob data sets (well separated, then overlapping): ARI against the true
   labels of leaders, mini-batch k-means and full k-means (scikit-learn), side by side.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = (20_000, 100_000, 200_000)
FEATURES = 4096
K = 50
MEMORY_TARGET_MB = 1024


def write_layer(
    path: Path, n: int, dim: int, k: int, seed: int = 0, rows_per_write: int = 2048
) -> None:
    """A layer of ``n`` rows around ``k`` centres, written block by block (never whole)."""
    from actpipe.storage import ActivationWriter

    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, size=(k, dim)).astype(np.float32)
    writer = ActivationWriter(path, "synthetic", n, 1)
    writer.add_layer("features", dim, (dim,), {})
    for start in range(0, n, rows_per_write):
        m = min(rows_per_write, n - start)
        labels = rng.integers(0, k, size=m)
        values = centres[labels] + rng.normal(0.0, 0.5, size=(m, dim)).astype(np.float32)
        writer.write_rows(start, np.zeros((m, 1, 4)), {"features": values[:, None, :]})
    writer.finish([f"row{i:07d}" for i in range(n)], {"synthetic": True})


def run_one(path: str, k: int) -> None:
    """Child process: cluster one file, print seconds and peak memory as JSON."""
    from actpipe.clustering import cluster_layer

    started = time.perf_counter()
    attrs = cluster_layer(
        path,
        "synthetic",
        "features",
        {"method": "minibatch_kmeans", "k": k},
        Path(path).with_suffix(".clusters.h5"),
        "bench",
    )
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"seconds": seconds, "peak_mb": peak_mb, "n_clusters": attrs["quality"]["n_nonempty"]}
        )
    )


def scaling(folder: Path, scale: float, k: int, keep: bool) -> list[dict]:
    results = []
    for size in SIZES:
        n = max(2 * k, int(round(size * scale)))
        path = folder / f"layer_{n}.h5"
        started = time.perf_counter()
        write_layer(path, n, FEATURES, k)
        gb = path.stat().st_size / 1e9
        print(
            f"wrote {n:>7} x {FEATURES} float32 ({gb:.2f} GB) in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        proc = subprocess.run(
            [sys.executable, __file__, "--run", str(path), "--k", str(k)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append({"n": n, "gb": gb, **result})
        if not keep:
            path.unlink()
            path.with_suffix(".clusters.h5").unlink(missing_ok=True)
    base = results[0]["seconds"] / results[0]["n"]
    print(f"\nstreaming minibatch_kmeans, k={k}, {FEATURES} features")
    print("ratio: seconds per row against the smallest size (1.0 = linear; below 1: fixed costs")
    print("such as the initial k-means and the silhouette sample spread over more rows);")
    print("marginal: seconds per extra row from the previous size, against the smallest size")
    print(
        f"{'rows':>8} {'GB':>6} {'seconds':>8} {'s/1k rows':>10} {'ratio':>6} "
        f"{'marginal':>9} {'peak MB':>8}"
    )
    previous = None
    for r in results:
        per_row = r["seconds"] / r["n"]
        marginal = "-"
        if previous is not None:
            extra = (r["seconds"] - previous["seconds"]) / (r["n"] - previous["n"])
            marginal = f"{extra / base:.2f}"
        print(
            f"{r['n']:>8} {r['gb']:>6.2f} {r['seconds']:>8.1f} {1000 * per_row:>10.3f} "
            f"{per_row / base:>6.2f} {marginal:>9} {r['peak_mb']:>8.0f}"
        )
        previous = r
    largest = results[-1]["peak_mb"]
    print(
        f"peak memory of the largest: {largest:.0f} MB "
        f"({'under' if largest < MEMORY_TARGET_MB else 'OVER'} the {MEMORY_TARGET_MB} MB target)"
    )
    return results


def blob_quality(
    folder: Path, cluster_std: float, k: int = 20, n: int = 20_000, dim: int = 64
) -> None:
    """ARI against the true blob labels: leaders, mini-batch k-means, full k-means."""
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    from actpipe.clustering import cluster_layer, read_layer_clusters
    from actpipe.storage import ActivationWriter

    X, y = make_blobs(
        n_samples=n, centers=k, n_features=dim, cluster_std=cluster_std, random_state=0
    )
    X = X.astype(np.float32)
    path = folder / "blobs.h5"
    writer = ActivationWriter(path, "blobs", n, 1)
    writer.add_layer("features", dim, (dim,), {})
    writer.write_rows(0, np.zeros((n, 1, 4)), {"features": X[:, None, :]})
    writer.finish([f"b{i:06d}" for i in range(n)], {})
    print(
        f"\nblobs: {n} rows, {dim} features, {k} true clusters, cluster_std {cluster_std}; "
        "ARI against the true labels"
    )
    for method in ("leaders", "minibatch_kmeans"):
        started = time.perf_counter()
        out = folder / f"blobs_{method}.h5"
        cluster_layer(path, "blobs", "features", {"method": method, "k": k}, out, "bench")
        got = read_layer_clusters(out)
        print(
            f"  {method:<17} ARI {adjusted_rand_score(y, got['labels']):.3f}  "
            f"({got['centroids'].shape[0]} clusters, {time.perf_counter() - started:.1f} s)"
        )
    started = time.perf_counter()
    full = KMeans(n_clusters=k, n_init=10, random_state=0).fit(X.astype(np.float64))
    print(
        f"  {'kmeans (full)':<17} ARI {adjusted_rand_score(y, full.labels_):.3f}  "
        f"({k} clusters, {time.perf_counter() - started:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the row counts")
    parser.add_argument("--k", type=int, default=K)
    parser.add_argument("--dir", help="where the synthetic files go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic files")
    parser.add_argument("--blobs-only", action="store_true", help="only the blob comparison")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_one(args.run, args.k)
        return
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="cluster_scaling_") as tmp:
        folder = Path(tmp)
        if not args.blobs_only:
            scaling(folder, args.scale, args.k, args.keep)
        # Well separated blobs, then overlapping ones (where the methods differ).
        for cluster_std in (2.0, 12.0):
            blob_quality(folder, cluster_std)


if __name__ == "__main__":
    main()
