"""Overhead of full extraction over the bare forward pass (torchvision resnet50, batch 32).

Both are timed in the same process, on the same images, with the same malloc and thread
settings: the bare pass runs ``model(x)`` on preprocessed tensors already in memory; the
full extraction reads the PNG files, preprocesses, captures the layers with hooks and writes
HDF5. Prints both times and their ratio (target: at most 1.25 on CPU).

Two layer settings are measured: the stage outputs pooled over positions (``mean``, about
15 kB per image: the overhead of the machinery itself) and the same layers stored whole
(``flatten``, about 7.5 MB per image: there the cost of pushing that volume through the page
cache is added on top, which on a 2-core machine cannot hide behind the forward pass).

    python benchmarks/extract_overhead.py [--images 96] [--reduce mean flatten]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.extraction.runtime import tune_malloc
from actpipe.models import ModelSpec, build_model
from actpipe.preprocess import Jitter, expose, prepare_image
from actpipe.stimuli import materialise_stimuli

LAYERS = ["layer1", "layer2", "layer3", "layer4", "avgpool"]


def time_bare(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int) -> float:
    """Seconds of the bare forward passes over preprocessed tensors already in memory."""
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(inputs), batch_size):
            model(inputs[i : i + batch_size])
    return time.perf_counter() - start


def time_full(spec: ModelSpec, stimuli, out: Path, options: ExtractionOptions) -> float:
    """Seconds of the full extraction: loading, hooks, HDF5 writing."""
    start = time.perf_counter()
    extract_activations(spec, stimuli, out, options, "bench")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96, help="number of stimuli")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--reduce",
        nargs="+",
        default=["mean", "flatten"],
        choices=["flatten", "mean"],
        help="reductions of the captured layers to measure (flatten stores all)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="timed repetitions of each")
    args = parser.parse_args()

    tuned = tune_malloc()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, malloc tuned: {tuned}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        orientations = max(1, args.images // 4)
        stimuli = materialise_stimuli(
            {
                "source": "gratings",
                "size": 256,
                "orientations": orientations,
                "phases": 2,
                "spatial_frequencies": [3, 9],
            },
            tmp / "stimuli",
        )
        stimuli = stimuli.subset(0, args.images)
        options = ExtractionOptions.from_config({"n_replicates": 1, "progress": False})
        results = []
        for reduce in args.reduce:
            block = {
                "source": "torchvision",
                "name": "resnet50",
                "weights": "random",
                "layers": LAYERS,
                "reduce": reduce,
                "preprocess": "imagenet",
                "batch_size": args.batch_size,
            }
            spec = ModelSpec.from_config("resnet50", block)
            model, _ = build_model(spec)
            inputs = torch.cat(
                [
                    expose(prepare_image(p, spec.preprocess), sid, 1, Jitter(), spec.preprocess)[0]
                    for sid, p in zip(stimuli.ids, stimuli.paths, strict=True)
                ]
            )

            bare = partial(time_bare, model, inputs, args.batch_size)
            full = partial(time_full, spec, stimuli, tmp / "out.h5", options)

            bare()  # warm-up: allocator, kernels
            full()
            bare_times, full_times = [], []
            for _ in range(args.repeats):
                bare_times.append(bare())
                full_times.append(full())
            size_mb = (tmp / "out.h5").stat().st_size / 1e6
            results.append((reduce, min(bare_times), min(full_times), size_mb))
    print(f"images: {args.images}, batch: {args.batch_size}, layers: {LAYERS}")
    for reduce, b, f, size_mb in results:
        print(f"[{reduce}] output {size_mb:.0f} MB")
        print(f"[{reduce}] bare forward:    {b:7.2f} s  ({args.images / b:6.1f} img/s)")
        print(f"[{reduce}] full extraction: {f:7.2f} s  ({args.images / f:6.1f} img/s)")
        print(f"[{reduce}] ratio full/bare: {f / b:.3f}  (target <= 1.25)")


if __name__ == "__main__":
    main()
