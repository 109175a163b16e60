"""The gradient pass against the activation pass: wall time and peak memory, same model and
images (torchvision resnet50 by default, seeded random weights).

Each pass runs in a fresh child process (so neither inherits the other's allocations) that
times the library call (``extract_activations`` or ``compute_gradients``, storing gradient
and activation x gradient) and reports its peak resident memory (``ru_maxrss``). A third
child only imports the library and builds the model: its peak is the baseline both passes
share. Prints both passes' figures and the ratios gradient / activation (targets: time <= 3,
peak memory <= 2).

    python benchmarks/gradients.py [--model resnet50] [--images 64] [--batch-size 16]
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

LAYERS = {
    "resnet50": ["layer1", "layer2", "layer3", "layer4", "avgpool"],
    "resnet18": ["layer1", "layer2", "layer3", "layer4", "avgpool"],
}


def spec_block(model: str, batch_size: int, reduce: str) -> dict:
    return {
        "source": "torchvision",
        "name": model,
        "weights": "random",
        "layers": LAYERS[model],
        "reduce": reduce,
        "preprocess": "imagenet",
        "batch_size": batch_size,
    }


def child(args: argparse.Namespace) -> None:
    """One pass (or the baseline) in this process; prints JSON with seconds and peak MB."""
    from actpipe.extraction import ExtractionOptions, extract_activations
    from actpipe.gradients import GradientOptions, compute_gradients
    from actpipe.models import ModelSpec, build_model
    from actpipe.stimuli import load_stimulus_folder

    spec = ModelSpec.from_config(args.model, spec_block(args.model, args.batch_size, args.reduce))
    stimuli = load_stimulus_folder(args.stimuli)
    options = ExtractionOptions.from_config({"n_replicates": 1, "progress": False})
    seconds = 0.0
    if args.child == "baseline":
        build_model(spec)
    else:
        start = time.perf_counter()
        if args.child == "activations":
            extract_activations(spec, stimuli, args.out, options)
        else:
            compute_gradients(spec, stimuli, args.out, options, GradientOptions())
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb}))


def run_child(kind: str, args: argparse.Namespace, stimuli: Path, out: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--stimuli",
        str(stimuli),
        "--out",
        str(out),
        "--model",
        args.model,
        "--batch-size",
        str(args.batch_size),
        "--reduce",
        args.reduce,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", choices=sorted(LAYERS))
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--reduce", default="mean", choices=["mean", "flatten"])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each pass (min kept)")
    parser.add_argument("--child", choices=["baseline", "activations", "gradients"])
    parser.add_argument("--stimuli")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from actpipe.stimuli import materialise_stimuli

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        materialise_stimuli(
            {
                "source": "gratings",
                "size": 256,
                "orientations": max(1, -(-args.images // 4)),
                "phases": 2,
                "spatial_frequencies": [3, 9],
            },
            tmp / "all",
        )
        folder = tmp / "stimuli"
        folder.mkdir()
        for path in sorted((tmp / "all").glob("*.png"))[: args.images]:
            path.rename(folder / path.name)
        baseline = run_child("baseline", args, folder, tmp / "b.h5")
        results = {}
        for kind in ("activations", "gradients"):
            runs = [run_child(kind, args, folder, tmp / f"{kind}.h5") for _ in range(args.repeats)]
            results[kind] = {
                "seconds": min(r["seconds"] for r in runs),
                "peak_mb": min(r["peak_mb"] for r in runs),
                "file_mb": (tmp / f"{kind}.h5").stat().st_size / 1e6,
            }
    a, g = results["activations"], results["gradients"]
    print(
        f"{args.model}, {args.images} images of 224 px, batch {args.batch_size}, layers "
        f"{LAYERS[args.model]} ({args.reduce}); one child process per pass"
    )
    print(f"baseline (imports + model):   peak {baseline['peak_mb']:7.0f} MB")
    for name, r in (("activation pass", a), ("gradient pass", g)):
        print(
            f"{name + ':':29} {r['seconds']:7.2f} s ({args.images / r['seconds']:5.1f} img/s)  "
            f"peak {r['peak_mb']:7.0f} MB (+{r['peak_mb'] - baseline['peak_mb']:.0f} over the "
            f"baseline)  file {r['file_mb']:.1f} MB"
        )
    print(
        f"ratio gradient/activation, time:        {g['seconds'] / a['seconds']:.2f}  (target <= 3)"
    )
    print(
        f"ratio gradient/activation, peak memory: {g['peak_mb'] / a['peak_mb']:.2f}  (target <= 2)"
    )


if __name__ == "__main__":
    main()
