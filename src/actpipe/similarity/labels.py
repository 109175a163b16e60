"""Label columns of a stimulus set (``labels.csv``) aligned to the stimuli of an activation file.

A stimulus set's ``labels.csv`` has a ``stimulus_id`` column and any number of label columns.
:class:`StimulusLabels` holds, for each column, one value per stimulus (``""`` when the file
has no value for it) and groups the stimuli into *conditions*: one per distinct value. Numeric
columns (every non-empty value parses as a number) sort their conditions numerically, others
alphabetically. Images in subfolders (ids ``cats/001``) also get the ``folder`` label, first
(:func:`actpipe.stimuli.labels.folder_labels`; a ``folder`` column of ``labels.csv`` wins).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..stimuli.labels import FOLDER_COLUMN, folder_labels

LABELS_FILE = "labels.csv"
ID_COLUMN = "stimulus_id"

PathLike = str | os.PathLike[str]


def _is_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return not math.isnan(value)


@dataclass
class StimulusLabels:
    """Label values of a list of stimuli: ``columns[name][i]`` belongs to ``stimulus_ids[i]``."""

    stimulus_ids: list[str]
    columns: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def read(
        cls, path: PathLike | None, stimulus_ids: Sequence[str], *, missing: str = "error"
    ) -> StimulusLabels:
        """Labels of ``stimulus_ids`` from ``labels.csv`` (the file, or the folder holding it).

        No path, or a folder without ``labels.csv``: no columns. A stimulus without a row is an
        error naming it (``missing="error"``) or gets empty values (``missing="empty"``).
        """
        ids = list(stimulus_ids)
        folders = folder_labels(ids)  # images in subfolders: the 'folder' label comes first
        derived = {} if folders is None else {FOLDER_COLUMN: folders}
        if path is None:
            return cls(ids, derived)
        path = Path(path)
        if path.is_dir():
            path = path / LABELS_FILE
        if not path.exists():
            return cls(ids, derived)
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or ID_COLUMN not in reader.fieldnames:
                raise ValueError(
                    f"{path}: the first line must name the columns, one of them "
                    f"{ID_COLUMN!r} (found {reader.fieldnames})"
                )
            names = [c for c in reader.fieldnames if c != ID_COLUMN]
            rows: dict[str, dict[str, str]] = {}
            for line, row in enumerate(reader, start=2):
                sid = row[ID_COLUMN]
                if sid in rows:
                    raise ValueError(f"{path}:{line}: stimulus_id {sid!r} appears twice")
                rows[sid] = row
        absent = [sid for sid in ids if sid not in rows]
        if absent and missing == "error":
            raise ValueError(
                f"{path}: no row for {len(absent)} stimulus id(s) of the activation file, e.g. "
                f"{absent[:5]}; add them to {path.name} or remove the file"
            )
        columns = {
            name: [(rows[sid].get(name) or "").strip() if sid in rows else "" for sid in ids]
            for name in names
        }
        return cls(ids, {**derived, **columns}, str(path))

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def is_numeric(self, name: str) -> bool:
        """Whether every non-empty value of the column parses as a (non-NaN) number."""
        values = [v for v in self.columns[name] if v != ""]
        return bool(values) and all(_is_number(v) for v in values)

    def conditions(self, name: str) -> tuple[list[str], np.ndarray]:
        """``(values, codes)``: the distinct values in order and each stimulus's index (-1: none).

        Numeric columns are ordered by value, others alphabetically.
        """
        column = self.columns[name]
        distinct = sorted({v for v in column if v != ""})
        if self.is_numeric(name):
            distinct.sort(key=float)
        index = {v: i for i, v in enumerate(distinct)}
        codes = np.array([index.get(v, -1) for v in column], dtype=np.int64)
        return distinct, codes

    def subset(self, rows: Sequence[int] | np.ndarray) -> StimulusLabels:
        """The labels of the stimuli at ``rows`` (in that order)."""
        rows = [int(r) for r in rows]
        return StimulusLabels(
            [self.stimulus_ids[r] for r in rows],
            {name: [col[r] for r in rows] for name, col in self.columns.items()},
            self.source,
        )

    @classmethod
    def from_mapping(
        cls, stimulus_ids: Sequence[str], columns: Mapping[str, Sequence[str]], source: str = ""
    ) -> StimulusLabels:
        ids = list(stimulus_ids)
        out = {}
        for name, values in columns.items():
            values = ["" if v is None else str(v) for v in values]
            if len(values) != len(ids):
                raise ValueError(f"label {name!r} has {len(values)} values for {len(ids)} stimuli")
            out[str(name)] = values
        return cls(ids, out, source)
