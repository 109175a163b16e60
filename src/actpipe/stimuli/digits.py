"""The handwritten digits data set that ships inside scikit-learn, upscaled to images."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(images, targets)``: 1,797 images of 8x8 pixels with values 0..16, and digit labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float64), data.target.astype(np.int64)


def upscale(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upscaling of one 8x8 digit (values 0..16) to a ``size`` x ``size`` uint8."""
    from PIL import Image

    pixels = np.clip(image / 16.0 * 255.0, 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(pixels, mode="L").resize((size, size), Image.BILINEAR))


def select_indices(targets: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """A seeded, class-balanced subset of ``n`` indices (all of them for ``None``), sorted."""
    if n is None or n >= len(targets):
        return np.arange(len(targets))
    if n < 1:
        raise ValueError(f"digits: n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    classes = np.unique(targets)
    per_class = [rng.permutation(np.flatnonzero(targets == c)) for c in classes]
    chosen: list[int] = []
    round_index = 0
    while len(chosen) < n:
        for members in per_class:
            if round_index < len(members) and len(chosen) < n:
                chosen.append(int(members[round_index]))
        round_index += 1
    return np.sort(np.asarray(chosen))


def generate_digits(
    size: int = 64, n: int | None = None, seed: int = 0
) -> Iterator[tuple[str, np.ndarray, dict[str, int]]]:
    """Yield ``(stimulus_id, uint8 image, labels)`` for the digits set (or a balanced subset)."""
    images, targets = load_digits_arrays()
    for index in select_indices(targets, n, seed):
        stimulus_id = f"digit_{index:04d}"
        yield stimulus_id, upscale(images[index], size), {"digit": int(targets[index])}
