"""Heatmaps that analyses hand to the site: the input contract of the transformer page (and
of any later page that shows matrices; the similarity page draws its analysis's own files).

An analysis puts, anywhere under its results folder, JSON files named ``*.heatmap.json``::

    {"kind": "heatmap",
     "title": "CKA: resnet18 x vit_tiny",          # shown above the map
     "stimulus_set": "digits",                      # optional: groups maps by set
     "group": "CKA",                                # optional: the page's chooser groups by it
     "x": {"title": "vit_tiny layer", "labels": ["blocks.0", "blocks.3"]},
     "y": {"title": "resnet18 layer", "labels": ["layer1", "layer2", "layer3"]},
     "values": [[0.9, 0.4], [0.5, 0.7], [0.2, 0.8]],   # len(y) rows of len(x); null = missing
     "zmin": 0, "zmax": 1,                          # optional colour range
     "scale": "sequential",                         # or "diverging" (centred on 0)
     "unit": "CKA",                                 # optional: colour-bar title
     "text": "Linear CKA between the layers' replicate means."}   # optional sentence

A map has at most :data:`MAX_VALUES` cells (average an RDM over conditions first); files
that break the contract are skipped with a warning naming the file and the problem, so one
bad file never stops the site.

An analysis may also write ``best_layers.tsv`` in its folder (columns ``stimulus_set``,
``label``, ``model``, ``layer``, ``measure``, ``score``): the overview then lists, per label,
the layer of each model that agrees best with it by that measure.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pages import BuildContext

log = logging.getLogger(__name__)
MAX_VALUES = 1_000_000
SUFFIX = ".heatmap.json"


def _labels(axis: Any, where: str, name: str) -> list[str]:
    if not isinstance(axis, dict) or not isinstance(axis.get("labels"), list):
        raise ValueError(f'{where}: \'{name}\' must be {{"title": ..., "labels": [...]}}')
    return [str(v) for v in axis["labels"]]


def read_heatmap(path: Path) -> dict[str, Any]:
    """One heatmap file, checked against the contract (``ValueError`` naming the problem)."""
    where = str(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("kind") != "heatmap":
        raise ValueError(f'{where}: not a heatmap ("kind": "heatmap" expected)')
    x = _labels(data.get("x"), where, "x")
    y = _labels(data.get("y"), where, "y")
    values = data.get("values")
    if not isinstance(values, list) or len(values) != len(y):
        raise ValueError(f"{where}: 'values' must hold {len(y)} rows (one per y label)")
    if len(x) * len(y) > MAX_VALUES:
        raise ValueError(
            f"{where}: {len(y)} x {len(x)} cells, more than {MAX_VALUES}; average over "
            "conditions before handing the matrix to the site"
        )
    rows = []
    for i, row in enumerate(values):
        if not isinstance(row, list) or len(row) != len(x):
            raise ValueError(f"{where}: row {i} of 'values' must hold {len(x)} numbers")
        clean = []
        for v in row:
            if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
                clean.append(None if v is None or not math.isfinite(v) else float(v))
            else:
                raise ValueError(f"{where}: row {i} of 'values' holds {v!r}, not a number")
        rows.append(clean)
    scale = data.get("scale", "sequential")
    if scale not in ("sequential", "diverging"):
        raise ValueError(f"{where}: 'scale' is {scale!r}; use sequential or diverging")
    out = {
        "title": str(data.get("title", path.name[: -len(SUFFIX)])),
        "set": str(data.get("stimulus_set", "")),
        "group": str(data.get("group", "")),
        "text": str(data.get("text", "")),
        "unit": str(data.get("unit", "")),
        "scale": scale,
        "x": {"title": str(data["x"].get("title", "")), "labels": x},
        "y": {"title": str(data["y"].get("title", "")), "labels": y},
        "values": rows,
    }
    for bound in ("zmin", "zmax"):
        value = data.get(bound)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[bound] = float(value)
    return out


def find_heatmaps(folder: Path | None, exclude: Iterable[Path] = ()) -> list[Path]:
    """The ``*.heatmap.json`` files under ``folder``, sorted, leaving out those under any
    folder of ``exclude``."""
    if folder is None or not folder.is_dir():
        return []
    skip = [Path(p) for p in exclude]
    return [
        path
        for path in sorted(folder.rglob(f"*{SUFFIX}"))
        if not any(path.is_relative_to(s) for s in skip)
    ]


def write_heatmaps(
    context: BuildContext, folder: Path, prefix: str, exclude: Iterable[Path] = ()
) -> list[dict[str, Any]]:
    """Write each valid heatmap under ``{prefix}/h/{i}`` (leaving out the folders of
    ``exclude``); return the page's list of maps."""
    entries = []
    for path in find_heatmaps(folder, exclude):
        try:
            heatmap = read_heatmap(path)
        except (OSError, ValueError) as exc:
            log.warning("heatmap skipped: %s", exc)
            continue
        key = f"{prefix}/h/{len(entries)}"
        context.site.data(key, heatmap)
        entries.append(
            {
                "key": key,
                "title": heatmap["title"],
                "set": heatmap["set"],
                "group": heatmap["group"],
                "file": path.relative_to(folder).as_posix(),
            }
        )
    return entries


def best_layers_section(folder: Path, title: str) -> list[dict[str, Any]]:
    """The overview sections of an analysis's ``best_layers.tsv`` (none when absent)."""
    path = folder / "best_layers.tsv"
    if not path.is_file():
        return []
    from .pages import overview_section

    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    needed = {"stimulus_set", "label", "model", "layer", "measure", "score"}
    if rows and not needed <= set(rows[0]):
        log.warning("%s skipped: columns %s expected", path, ", ".join(sorted(needed)))
        return []

    def score(row: dict[str, str]) -> float:
        try:
            return float(row["score"])
        except ValueError:
            return float("-inf")

    rows.sort(key=lambda r: (r["stimulus_set"], r["label"], -score(r)))
    table = [
        [r["stimulus_set"], r["label"], r["model"], r["layer"], r["measure"], r["score"]]
        for r in rows
    ]
    text = f"From {path.name}: per label, the layer of each model that agrees best with it."
    return [
        overview_section(title, text, ["set", "label", "model", "layer", "measure", "score"], table)
    ]
