"""Stimulus sources: folders of images and the generated sets that materialise as folders.

Every set reaches extraction through the same folder code path: generated sets are first
written as a PNG folder with a ``labels.csv`` by :func:`materialise_stimuli` (the workflow's
rule of that name). :mod:`.folder` lists a folder's images (the rule itself is
:mod:`actpipe.imagefiles`), :mod:`.decode` decodes them and checks them before a run,
:mod:`.labels` reads ``labels.csv`` and the ``folder`` label, :mod:`.gratings` and
:mod:`.digits` generate sets.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FolderChangedError, StimulusError
from .decode import check_image, decode_image, find_unreadable, load_rgb
from .folder import FolderOptions, StimulusSet, list_images, load_stimulus_folder
from .labels import LABELS_FILE, label_columns, read_labels

GENERATORS: dict[str, str] = {
    "gratings": "actpipe.stimuli.gratings:generate_gratings",
    "digits": "actpipe.stimuli.digits:generate_digits",
}
"""Generated sources: config ``source`` -> ``module:function`` yielding the set's items."""

log = logging.getLogger(__name__)

__all__ = [
    "GENERATORS",
    "LABELS_FILE",
    "FolderChangedError",
    "FolderOptions",
    "StimulusError",
    "StimulusSet",
    "check_image",
    "decode_image",
    "find_unreadable",
    "generated_items",
    "label_columns",
    "list_images",
    "load_rgb",
    "load_stimulus_folder",
    "materialise_stimuli",
    "read_labels",
]


def generated_items(spec: dict[str, Any]) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
    """The ``(stimulus_id, uint8 image, labels)`` items of a generated set's config block."""
    import importlib

    source = spec["source"]
    options = {k: v for k, v in spec.items() if k not in ("source", "shard_size")}
    if source not in GENERATORS:
        raise StimulusError(
            f"unknown generated stimulus source {source!r}; choose one of {list(GENERATORS)}"
        )
    module, _, function = GENERATORS[source].partition(":")
    return getattr(importlib.import_module(module), function)(**options)


def materialise_stimuli(spec: dict[str, Any], out_dir: str | os.PathLike[str]) -> StimulusSet:
    """Write a generated set as PNG files plus ``labels.csv`` into ``out_dir``.

    The workflow's ``materialise_stimuli`` rule calls this.
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
    stimuli = load_stimulus_folder(out_dir)
    log.info("wrote %d stimuli to %s", len(stimuli), out_dir)
    return stimuli
