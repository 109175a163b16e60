"""Per-model extraction throughput and storage per image, for planning large runs.

Runs the real extraction (loading, hooks, HDF5 writing) of each model block of a config on a
small generated set, and prints images per second and bytes per image for each layer as
stored (so float16, reductions and compression can be compared). The numbers feed
docs/scaling.md; on a GPU node run the same command there (``extraction.device`` auto picks
CUDA).

    python benchmarks/throughput.py --config config/panels/seed_panel.yaml --models ResNet50 VGG19
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import yaml

from actpipe.extraction import ExtractionOptions, extract_activations
from actpipe.extraction.runtime import tune_malloc
from actpipe.models import ModelSpec
from actpipe.stimuli import materialise_stimuli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml", help="config with a models: block")
    parser.add_argument("--models", nargs="*", help="model names (default: all in the config)")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--compression", default="none", choices=["none", "lzf", "gzip"])
    args = parser.parse_args()

    tune_malloc()
    config = yaml.safe_load(Path(args.config).read_text())
    models = config["models"]
    names = args.models or list(models)
    options = ExtractionOptions.from_config(
        {"n_replicates": 1, "progress": False},
        {"dtype": args.dtype, "compression": args.compression})
    print(f"{'model':28s} {'img/s':>8s} {'MB/img':>9s}  per layer (kB/img)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stimuli = materialise_stimuli(
            {"source": "gratings", "size": 256, "orientations": args.images, "phases": 1,
             "spatial_frequencies": [4]}, tmp / "stimuli")
        for name in names:
            spec = ModelSpec.from_config(name, models[name])
            start = time.perf_counter()
            out = extract_activations(spec, stimuli, tmp / f"{name}.h5", options, "bench")
            seconds = time.perf_counter() - start
            with h5py.File(out, "r") as f:
                layers = {k: d.id.get_storage_size() / len(stimuli) / 1e3
                          for k, d in f[f"{name}/layers"].items()}
            out.unlink()
            total = sum(layers.values()) / 1e3
            detail = ", ".join(f"{k}={v:.1f}" for k, v in layers.items())
            print(f"{name:28s} {len(stimuli) / seconds:8.2f} {total:9.3f}  {detail}", flush=True)


if __name__ == "__main__":
    main()
