"""Cost of the check before extraction (``on_bad_image: error``) against decoding the images.

For a folder of small photo-like images (JPEG and PNG, as people's folders hold them), times
:func:`actpipe.stimuli.find_unreadable` (header, size guard, PNG chunk checksums, JPEG
decoded at 1/8 scale) and the extraction's own per-image work (decode, resize and crop to
224: :func:`actpipe.preprocess.prepare_image`) on the same files in the same run, and prints
their ratio: the fraction of the image loading time the check adds.

    python benchmarks/image_check.py [--images 3000] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from actpipe.preprocess import prepare_image, resolve_preprocess
from actpipe.stimuli import find_unreadable, load_stimulus_folder


def make_folder(root: Path, n: int, fmt: str, seed: int = 0) -> None:
    """``n`` smooth, noisy, photo-like images of varied sizes around 320 x 240."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = int(rng.integers(200, 280)), int(rng.integers(280, 360))
        yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
        base = np.stack([xx, yy, 0.5 + 0.5 * np.sin(9 * xx * yy + i)], axis=2) * 200 + 25
        pixels = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(
            root / f"{i:05d}.{fmt}", **({"quality": 90} if fmt == "jpg" else {})
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000, help="images per format")
    parser.add_argument("--workers", type=int, default=2, help="threads of the check")
    args = parser.parse_args()
    pre = resolve_preprocess("imagenet")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("jpg", "png"):
            folder = Path(tmp) / fmt
            folder.mkdir()
            make_folder(folder, args.images, fmt)
            stimuli = load_stimulus_folder(folder)
            find_unreadable(stimuli.paths[:50], workers=1)  # warm-up: imports, page cache
            start = time.perf_counter()
            problems = find_unreadable(stimuli.paths, stimuli.options.max_image_pixels, 1)
            check_1 = time.perf_counter() - start
            start = time.perf_counter()
            find_unreadable(stimuli.paths, stimuli.options.max_image_pixels, args.workers)
            check_n = time.perf_counter() - start
            start = time.perf_counter()
            for path in stimuli.paths:
                prepare_image(path, pre)
            load = time.perf_counter() - start
            assert not problems
            n = len(stimuli)
            kb = sum(p.stat().st_size for p in stimuli.paths) / n / 1e3
            print(f"[{fmt}] {n} images, {kb:.0f} kB each")
            print(
                f"[{fmt}] check, 1 thread:      {check_1:6.2f} s  ({1e3 * check_1 / n:.2f} ms/img)"
            )
            print(f"[{fmt}] check, {args.workers} threads:     {check_n:6.2f} s")
            print(f"[{fmt}] decode+resize+crop: {load:6.2f} s  ({1e3 * load / n:.2f} ms/img)")
            print(f"[{fmt}] ratio check/load (1 thread): {check_1 / load:.3f}")


if __name__ == "__main__":
    main()
