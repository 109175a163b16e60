"""Stimulus sources: folders of images and the generated sets that materialise as folders.

Every set reaches extraction through the same folder code path: generated sets are first
written as a PNG folder with a ``labels.csv`` by :func:`materialise_stimuli`.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .folder import (
    LABELS_FILE,
    StimulusError,
    StimulusSet,
    list_images,
    load_rgb,
    load_stimulus_folder,
)

GENERATED_SOURCES = ("gratings", "digits")

__all__ = [
    "GENERATED_SOURCES",
    "StimulusError",
    "StimulusSet",
    "generated_items",
    "list_images",
    "load_rgb",
    "load_stimulus_folder",
    "materialise_stimuli",
]


def generated_items(spec: dict[str, Any]) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
    """The ``(stimulus_id, uint8 image, labels)`` items of a generated set's config block."""
    source = spec["source"]
    options = {k: v for k, v in spec.items() if k not in ("source", "shard_size")}
    if source == "gratings":
        from .gratings import generate_gratings

        return generate_gratings(**options)
    if source == "digits":
        from .digits import generate_digits

        return generate_digits(**options)
    raise StimulusError(
        f"unknown generated stimulus source {source!r}; choose one of {GENERATED_SOURCES}"
    )


def materialise_stimuli(spec: dict[str, Any], out_dir: str | os.PathLike[str]) -> StimulusSet:
    """Write a generated set as PNG files plus ``labels.csv`` into ``out_dir``.

    The folder is built under a temporary name and renamed when complete, so an interrupted
    run never leaves a half-written set behind.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        rows: list[dict[str, Any]] = []
        for stimulus_id, pixels, labels in generated_items(spec):
            Image.fromarray(pixels).save(tmp / f"{stimulus_id}.png", optimize=False)
            rows.append({"stimulus_id": stimulus_id, **labels})
        with open(tmp / LABELS_FILE, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_stimulus_folder(out_dir)
