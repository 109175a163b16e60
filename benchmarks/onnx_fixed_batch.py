"""Throughput of an ONNX graph exported with a fixed batch of 1, against the same model
exported with a dynamic batch axis (the baseline), all fed batches of ``--batch-size``.

Three ways of running the fixed-batch export through :class:`OnnxCapture` are timed in the
same process, on the same preprocessed images, with the same threads:

- ``dynamic``: the export with ``dynamic_axes`` (baseline: whole batches);
- ``freed``: the fixed-batch export whose copy got a free batch axis (the proof holds for
  torchvision CNNs): whole batches;
- ``pieces``: the same fixed-batch export fed in pieces of 1 (as for graphs the proof
  refuses, e.g. exported ViTs).

Prints images per second and each ratio of time to the baseline's.

    python benchmarks/onnx_fixed_batch.py [--model resnet18] [--size 112] [--images 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torchvision

from actpipe.extraction import OnnxCapture
from actpipe.models import ModelSpec


def export(model: torch.nn.Module, path: Path, size: int, dynamic: bool) -> Path:
    """torch's TorchScript exporter, default names; ``dynamic``: a free batch axis."""
    extra = {"input_names": ["x"], "dynamic_axes": {"x": {0: "n"}}} if dynamic else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), str(path), dynamo=False, **extra)
    return path


def time_capture(capture: OnnxCapture, images: torch.Tensor, batch_size: int) -> float:
    """Seconds to run every batch of ``images`` through ``capture``."""
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        capture.run(images[i : i + batch_size])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="a torchvision architecture")
    parser.add_argument("--size", type=int, default=112, help="image side")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = torchvision.models.get_model(args.model).eval()
    images = torch.randn(args.images, 3, args.size, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = {
            "dynamic": export(model, tmp / "dynamic.onnx", args.size, True),
            "fixed": export(model, tmp / "fixed.onnx", args.size, False),
        }
        captures = {}
        for name, source in (("dynamic", "dynamic"), ("freed", "fixed"), ("pieces", "fixed")):
            block = {
                "source": "onnx",
                "path": str(paths[source]),
                "layers": "auto",
                "reduce": "mean",
                "preprocess": {"preset": "none", "size": args.size, "resize": args.size},
                "batch_size": args.batch_size,
            }
            spec = ModelSpec.from_config(name, block)
            capture = OnnxCapture(spec, tmp / "cache", "cpu", args.threads)
            if name == "pieces":
                capture.piece = 1
            captures[name] = capture
        assert captures["freed"].piece is None, "the fixed-batch export was not freed"
        times = {}
        for name, capture in captures.items():
            time_capture(capture, images[: args.batch_size], args.batch_size)  # warm-up
            times[name] = min(
                time_capture(capture, images, args.batch_size) for _ in range(args.repeats)
            )
    print(
        f"{args.model} at {args.size}px, {args.images} images, batch_size {args.batch_size}, "
        f"{args.threads} threads, layers: auto (mean)"
    )
    for name, seconds in times.items():
        print(
            f"{name:8s} {seconds:7.2f} s  ({args.images / seconds:6.1f} img/s)  "
            f"ratio to dynamic: {seconds / times['dynamic']:.3f}"
        )


if __name__ == "__main__":
    main()
