"""Reading a results tree: the stimulus sets, the clustering runs and optional analyses.

A *run* is one (stimulus set, model, parameter set) folder
``clusters/{set}/{model}/{parameter_set}/`` with ``metadata.json``, ``quality.tsv``,
``paths.json``, ``transitions.json`` and, when the clustering wrote it,
``distances.h5``. A *stimulus table* is a set's thumbnails manifest
(``thumbnails/{set}/manifest.json``): its stimulus ids, labels and thumbnail files.
Large files are read when first used and kept (one run at a time is built).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..aggregation import read_member_distances
from ..names import layer_key
from ..results import CLUSTER_OUTPUTS
from .thumbnails import read_manifest

PathLike = str | os.PathLike[str]
REPLICATE_SEPARATOR = "#"
RUN_FILES = ("metadata.json", "quality.tsv", "paths.json", "transitions.json")


def _float(value: str | None) -> float | None:
    """A quality-table cell as a number (None: empty or not a number)."""
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if np.isfinite(out) else None


@dataclass
class StimulusTable:
    """The stimuli of one set in thumbnail order: ids, label columns and thumbnail files."""

    name: str
    folder: Path
    manifest: dict[str, Any]

    @property
    def key(self) -> str:
        return layer_key(self.name)

    @property
    def ids(self) -> list[str]:
        return self.manifest["ids"]

    @property
    def labels(self) -> dict[str, list[str]]:
        return self.manifest.get("labels", {})

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def index(self) -> dict[str, int]:
        return {sid: i for i, sid in enumerate(self.ids)}

    @cached_property
    def label_codes(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """Per label column: the distinct values (numeric order when every value is a number,
        else text order) and each stimulus's code into them."""
        out = {}
        for column, values in self.labels.items():
            distinct = sorted(set(values), key=_value_order(values))
            code = {v: i for i, v in enumerate(distinct)}
            out[column] = (distinct, np.asarray([code[v] for v in values], dtype=np.int64))
        return out

    def thumbnail_file(self, index: int) -> Path | None:
        if index in self.unreadable:
            return None
        return self.folder / self.manifest["pattern"].format(
            shard=index // self.manifest["shard"], index=index
        )

    @cached_property
    def unreadable(self) -> frozenset[int]:
        return frozenset(self.manifest.get("unreadable", []))


def _value_order(values: Iterable[str]) -> Any:
    try:
        for v in set(values):
            float(v)
    except ValueError:
        return lambda v: (0, v)
    return lambda v: (float(v), v)


@dataclass
class Run:
    """One (stimulus set, model, parameter set) clustering folder."""

    stimulus_set: str
    model: str
    parameter_set: str
    folder: Path

    @property
    def key(self) -> str:
        """``{set}/{model}/{parameter_set}`` as layer keys: the run's part of file names."""
        return "/".join(layer_key(p) for p in (self.stimulus_set, self.model, self.parameter_set))

    @cached_property
    def metadata(self) -> dict[str, Any]:
        return json.loads((self.folder / "metadata.json").read_text(encoding="utf-8"))

    @property
    def layers(self) -> list[str]:
        return list(self.metadata["layers"])

    @cached_property
    def quality(self) -> list[dict[str, str]]:
        with open(self.folder / "quality.tsv", newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh, delimiter="\t"))

    @property
    def label_columns(self) -> list[str]:
        return list(self.metadata.get("label_columns", []))

    def quality_values(self) -> list[dict[str, Any]]:
        """The quality table with numbers as numbers (None where empty)."""
        out = []
        for row in self.quality:
            entry: dict[str, Any] = {"layer": row["layer"]}
            for column, value in row.items():
                if column in ("layer", "method", "cluster_sizes"):
                    continue
                entry[column] = _float(value)
            out.append(entry)
        return out

    def load_paths(self) -> tuple[list[str], np.ndarray]:
        """Example ids and the ``(n_examples, n_layers)`` cluster matrix of ``paths.json``."""
        data = json.loads((self.folder / "paths.json").read_text(encoding="utf-8"))
        if data["layers"] != self.layers:
            raise ValueError(
                f"{self.folder / 'paths.json'}: layers {data['layers']} differ from "
                f"metadata.json's {self.layers}; rerun rule aggregate_clusters"
            )
        ids = list(data["paths"])
        if ids:
            matrix = np.asarray(list(data["paths"].values()), dtype=np.int64)
        else:
            matrix = np.zeros((0, len(self.layers)), dtype=np.int64)
        return ids, matrix.reshape(len(ids), len(self.layers))

    def load_transitions(self) -> list[dict[str, Any]]:
        data = json.loads((self.folder / "transitions.json").read_text(encoding="utf-8"))
        return list(data["transitions"])

    def load_distances(self) -> dict[str, np.ndarray] | None:
        return read_member_distances(self.folder / CLUSTER_OUTPUTS["distances"], self.layers)


class ResultsTree:
    """A results folder as the site sees it: runs, stimulus tables and optional outputs."""

    def __init__(self, root: PathLike, runs: Sequence[Run], sets: dict[str, StimulusTable]):
        self.root = Path(root)
        self.runs = list(runs)
        self.sets = sets

    @classmethod
    def read(
        cls,
        root: PathLike,
        runs: Sequence[tuple[str, str, str]] | None = None,
        thumbnails: PathLike | None = None,
    ) -> ResultsTree:
        """The runs of ``root`` (``runs``: the (set, model, parameter set) triples to show;
        default: every complete folder under ``clusters/``) and their sets' thumbnails
        (``thumbnails``: the folder holding ``{set}/manifest.json``; default
        ``root/thumbnails``)."""
        root = Path(root)
        clusters = root / "clusters"
        if runs is None:
            found = sorted(clusters.glob("*/*/*/metadata.json"))
            runs = [(p.parts[-4], p.parts[-3], p.parts[-2]) for p in found]
            if not runs:
                raise FileNotFoundError(
                    f"{clusters}: no clustering results (*/*/*/metadata.json); run the workflow "
                    "first, or point to the folder that holds clusters/"
                )
        items = []
        for stimset, model, pset in runs:
            folder = clusters / stimset / model / pset
            missing = [name for name in RUN_FILES if not (folder / name).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{folder}: missing {', '.join(missing)}; rerun rule aggregate_clusters "
                    "for this set, model and parameter set"
                )
            items.append(Run(stimset, model, pset, folder))
        thumbs = Path(thumbnails) if thumbnails is not None else root / "thumbnails"
        sets = {}
        for name in dict.fromkeys(run.stimulus_set for run in items):
            folder = thumbs / name
            sets[name] = StimulusTable(name, folder, read_manifest(folder))
        return cls(root, items, sets)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(run.model for run in self.runs))

    @property
    def parameter_sets(self) -> list[str]:
        return list(dict.fromkeys(run.parameter_set for run in self.runs))

    def runs_of_set(self, stimset: str) -> list[Run]:
        return [run for run in self.runs if run.stimulus_set == stimset]

    def optional(self, *parts: str) -> Path | None:
        """``root/parts...`` when it exists (an analysis output a page may show)."""
        path = self.root.joinpath(*parts)
        return path if path.exists() else None


def stimulus_of(example_id: str, examples: str) -> tuple[str, int]:
    """(stimulus id, replicate) of an example id; replicate -1 for replicate means.

    ``examples`` is metadata.json's ``examples``: ``stimuli`` or ``exposures (...)``.
    """
    if examples.startswith("stimuli"):
        return example_id, -1
    sid, sep, rep = example_id.rpartition(REPLICATE_SEPARATOR)
    if not sep or not rep.isdigit():
        raise ValueError(f"example id {example_id!r} is not '{{stimulus_id}}#{{replicate}}'")
    return sid, int(rep)
