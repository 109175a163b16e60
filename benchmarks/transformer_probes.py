"""Cost of attention metrics computed on the fly, against plain block outputs and stored patterns.

A ViT-S/16 (timm ``vit_small_patch16_224``, seeded random weights) at 224 px on 512 images,
three extractions of the same images, each in a fresh child process:

- ``plain``: the 12 block outputs, class token (``blocks.{i}``, reduce ``cls``);
- ``metrics``: the same plus every attention metric of every block, computed during the
  forward pass (seven ``(n, replicates, heads)`` arrays per block);
- ``patterns``: the same block outputs plus every block's attention pattern stored whole
  (``blocks.{i}.attn.pattern``, reduce ``flatten``: 6 x 197 x 197 values per block and image),
  the approach that the metrics replace.

Prints the wall time and the CPU time (user + system, all threads) of each extraction (model
build, image loading and writing included) and the child's peak resident memory, each as a
ratio to ``plain`` (targets: metrics <= 1.5x the time and <= 1.3x the peak memory of plain),
and the size of each file. With ``--repeats`` the variants run interleaved and the fastest run
of each counts; on a machine shared with other work, the CPU time ratio is the steadier one.

    python benchmarks/transformer_probes.py [--images 512] [--scale 1.0] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARCH = "vit_small_patch16_224"
DEPTH = 12
VARIANTS = ("plain", "metrics", "patterns")


def model_block(variant: str, batch_size: int) -> dict:
    layers: list = [f"blocks.{i}" for i in range(DEPTH)]
    block: dict = {
        "source": "timm",
        "name": ARCH,
        "weights": "random",
        "reduce": "cls",
        "preprocess": {"preset": "imagenet", "size": 224, "resize": 224},
        "batch_size": batch_size,
    }
    if variant == "metrics":
        block["metrics"] = "all"
    elif variant == "patterns":
        layers += [{"name": f"blocks.{i}.attn.pattern", "reduce": "flatten"} for i in range(DEPTH)]
    block["layers"] = layers
    return block


def child(variant: str, stimuli: str, out: str, batch_size: int) -> None:
    """Run one extraction and print its wall time and this process's peak RSS as JSON."""
    from actpipe.extraction import ExtractionOptions, extract_activations
    from actpipe.models import ModelSpec

    spec = ModelSpec.from_config("vit_s16", model_block(variant, batch_size))
    options = ExtractionOptions(progress=False, checkpoint_seconds=1e9)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    extract_activations(spec, stimuli, out, options, "bench")
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": after.ru_maxrss / 1024}))


def run_variant(variant: str, stimuli: Path, out: Path, batch_size: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--stimuli",
        str(stimuli),
        "--out",
        str(out),
        "--batch-size",
        str(batch_size),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise SystemExit(f"variant {variant} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["file_mb"] = out.stat().st_size / 2**20
    out.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="number of stimuli")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each variant (min kept)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--stimuli", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.stimuli, args.out, args.batch_size)
        return

    import torch

    from actpipe.stimuli import materialise_stimuli

    n = max(1, round(args.images * args.scale))
    print(
        f"{ARCH} at 224 px, {n} images, batch {args.batch_size}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        orientations = max(1, -(-n // 4))
        stimuli = materialise_stimuli(
            {
                "source": "gratings",
                "size": 224,
                "orientations": orientations,
                "phases": 2,
                "spatial_frequencies": [3, 9],
            },
            tmp / "stimuli",
        )
        folder = tmp / "subset"
        folder.mkdir()
        for path in stimuli.paths[:n]:
            (folder / Path(path).name).symlink_to(path)
        runs: dict[str, list[dict]] = {variant: [] for variant in args.variants}
        for _ in range(args.repeats):  # interleaved, so a change of machine load hits all
            for variant in args.variants:
                runs[variant].append(
                    run_variant(variant, folder, tmp / f"{variant}.h5", args.batch_size)
                )
        results: dict[str, dict] = {}
        for variant, done in runs.items():
            results[variant] = {
                "seconds": min(r["seconds"] for r in done),
                "cpu": min(r["cpu"] for r in done),
                "peak_mb": max(r["peak_mb"] for r in done),
                "file_mb": done[0]["file_mb"],
            }
    base = results.get("plain")
    print(
        f"{'variant':<10} {'wall s':>8} {'x plain':>8} {'CPU s':>8} {'x plain':>8} "
        f"{'peak MB':>8} {'x plain':>8} {'file MB':>9}"
    )
    for variant, r in results.items():
        ratio = {
            key: f"{r[key] / base[key]:.2f}" if base else "-"
            for key in ("seconds", "cpu", "peak_mb")
        }
        print(
            f"{variant:<10} {r['seconds']:>8.1f} {ratio['seconds']:>8} {r['cpu']:>8.1f} "
            f"{ratio['cpu']:>8} {r['peak_mb']:>8.0f} {ratio['peak_mb']:>8} {r['file_mb']:>9.1f}"
        )
    if base and "metrics" in results:
        m = results["metrics"]
        print(
            f"metrics vs plain: wall time {m['seconds'] / base['seconds']:.2f}x, CPU time "
            f"{m['cpu'] / base['cpu']:.2f}x (target <= 1.5), peak memory "
            f"{m['peak_mb'] / base['peak_mb']:.2f}x (target <= 1.3); load average now "
            f"{os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
