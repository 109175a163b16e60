"""Per-model extraction throughput and storage per image, for planning large runs.

Runs the real extraction (loading, hooks, HDF5 writing) of each model block of a config on a
generated set and prints, per model, images per second and bytes per image: as the config
stores the layers, and as they would take if every layer were stored whole (``flatten``).

Throughput excludes the fixed cost of a job (building the model, first-batch warm-up): each
model is run once to warm up, then on ``n`` and on ``2n`` images (best of ``--repeats`` runs
each), and the rate is ``n / (t(2n) - t(n))``. Run the same command on a GPU node to plan GPU hours
(``extraction.device: auto`` picks CUDA there).

    python benchmarks/throughput.py --config config/panels/seed_panel.yaml --images 16
    python benchmarks/throughput.py --models resnet18 --markdown
"""

from __future__ import annotations

import argparse
import gc
import math
import tempfile
import time
from pathlib import Path

import h5py
import torch
import yaml

from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.extraction.runtime import tune_malloc
from actpipe.models import ModelSpec
from actpipe.stimuli import materialise_stimuli


def measure(spec: ModelSpec, stimuli, n: int, options: ExtractionOptions, tmp: Path, repeats: int):
    """Best seconds for n and for 2n images (after a warm-up run), per-layer bytes per image."""
    times: dict[int, list[float]] = {n: [], 2 * n: []}
    layers: dict[str, tuple[float, float]] = {}
    for count in [n] + [n, 2 * n] * repeats:
        out = tmp / f"{spec.name}.h5"
        start = time.perf_counter()
        extract_activations(spec, stimuli.subset(0, count), out, options, "bench")
        seconds = time.perf_counter() - start
        with h5py.File(out, "r") as f:
            for name, dset in f[f"{spec.name}/layers"].items():
                per_row = dset.shape[1] * dset.dtype.itemsize
                flat = math.prod(int(v) for v in dset.attrs["original_shape"]) * per_row
                layers[name] = (dset.id.get_storage_size() / count, flat)
        out.unlink()
        gc.collect()
        times[count].append(seconds)
    return min(times[n][1:]), min(times[2 * n]), layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml", help="a config's models:")
    parser.add_argument("--models", nargs="*", help="model names (default: all in the config)")
    parser.add_argument("--images", type=int, default=16, help="n: runs on n and 2n images")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--size", type=int, default=256, help="side of the generated images")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--compression", default="none", choices=["none", "lzf", "gzip"])
    parser.add_argument(
        "--weights",
        default="random",
        help="weights for every model: random (default; offline) or 'config' (as configured)",
    )
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()

    tuned = tune_malloc()
    config = yaml.safe_load(Path(args.config).read_text())
    models = config["models"]
    names = args.models or list(models)
    options = ExtractionOptions.from_config(
        {"n_replicates": 1, "progress": False, "resume": False},
        {"dtype": args.dtype, "compression": args.compression},
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"malloc tuned: {tuned}, images {args.images}+{2 * args.images} at {args.size}px, "
        f"{args.dtype}, 1 replicate"
    )
    if args.markdown:
        print("| model | img/s | stored kB/img | flattened MB/img | layers (stored kB/img) |")
        print("| --- | ---: | ---: | ---: | --- |")
    else:
        print(f"{'model':24s} {'img/s':>8s} {'kB/img':>9s} {'flat MB/img':>12s}  per layer")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stimuli = materialise_stimuli(
            {
                "source": "gratings",
                "size": args.size,
                "orientations": 2 * args.images,
                "phases": 1,
                "spatial_frequencies": [4],
            },
            tmp / "stimuli",
        )
        for name in names:
            block = dict(models[name])
            if args.weights != "config":
                block["weights"] = args.weights
                block.pop("weights_prefix", None)
            spec = ModelSpec.from_config(name, block)
            t1, t2, layers = measure(spec, stimuli, args.images, options, tmp, args.repeats)
            rate = args.images / max(t2 - t1, 1e-9)
            stored = sum(s for s, _ in layers.values()) / 1e3
            flat = sum(f for _, f in layers.values()) / 1e6
            detail = ", ".join(f"{k}={s / 1e3:.1f}" for k, (s, _) in layers.items())
            if args.markdown:
                print(f"| {name} | {rate:.2f} | {stored:.1f} | {flat:.2f} | {detail} |", flush=True)
            else:
                print(f"{name:24s} {rate:8.2f} {stored:9.1f} {flat:12.2f}  {detail}", flush=True)


if __name__ == "__main__":
    main()
