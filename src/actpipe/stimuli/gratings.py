"""Oriented sinusoidal gratings: the classic orientation-tuning stimulus set."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def _as_values(value: int | Sequence[float], period: float) -> list[float]:
    """An int n means n evenly spaced values over ``[0, period)``; a list is taken as is."""
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"need at least one value, got {value}")
        return [period * i / value for i in range(value)]
    return [float(v) for v in value]


def grating(
    size: int,
    orientation_deg: float,
    spatial_frequency: float,
    phase_deg: float,
    contrast: float = 1.0,
    aperture: bool = False,
) -> np.ndarray:
    """One grating as float luminance in [0, 1], shape ``(size, size)``.

    ``spatial_frequency`` is in cycles per image width; orientation 0 gives vertical bars
    (luminance varies along x), increasing counter-clockwise. With ``aperture`` the grating
    is shown in a circle of diameter ``size`` on mean grey.
    """
    coords = (np.arange(size, dtype=np.float64) - (size - 1) / 2.0) / size
    yy, xx = np.meshgrid(-coords, coords, indexing="ij")
    theta = np.deg2rad(orientation_deg)
    along = xx * np.cos(theta) + yy * np.sin(theta)
    wave = np.sin(2.0 * np.pi * spatial_frequency * along + np.deg2rad(phase_deg))
    image = 0.5 + 0.5 * contrast * wave
    if aperture:
        inside = (xx**2 + yy**2) <= 0.25
        image = np.where(inside, image, 0.5)
    return image


def generate_gratings(
    size: int = 64,
    orientations: int | Sequence[float] = 8,
    phases: int | Sequence[float] = 2,
    spatial_frequencies: Sequence[float] = (2.0, 4.0, 8.0),
    contrast: float = 1.0,
    noise_std: float = 0.0,
    aperture: bool = False,
    seed: int = 0,
) -> Iterator[tuple[str, np.ndarray, dict[str, float]]]:
    """Yield ``(stimulus_id, uint8 image, labels)`` over orientations x phases x frequencies.

    ``orientations`` as an int n spans [0, 180) degrees; ``phases`` as an int spans [0, 360).
    ``noise_std`` adds seeded Gaussian pixel noise (luminance units) so that repeated
    generation with the same seed gives identical files.
    """
    rng = np.random.default_rng(seed)
    for orientation in _as_values(orientations, 180.0):
        for frequency in [float(f) for f in spatial_frequencies]:
            for phase in _as_values(phases, 360.0):
                image = grating(size, orientation, frequency, phase, contrast, aperture)
                if noise_std > 0:
                    image = image + rng.normal(0.0, noise_std, size=image.shape)
                pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
                stimulus_id = f"grating_o{orientation:06.2f}_sf{frequency:05.2f}_p{phase:06.2f}"
                labels = {
                    "orientation": orientation,
                    "spatial_frequency": frequency,
                    "phase": phase,
                }
                yield stimulus_id, pixels, labels
