"""Label columns of a stimulus set (``labels.csv``) aligned to the stimuli of an activation file.

A stimulus set's ``labels.csv`` has a ``stimulus_id`` column and any number of label columns.
:class:`StimulusLabels` holds, for each column, one value per stimulus (``""`` when the file
has no value for it) and groups the stimuli into *conditions*: one per distinct value. Numeric
columns (every non-empty value parses as a number) sort their conditions numerically, others
alphabetically. The columns are read by :func:`actpipe.stimuli.labels.label_columns`, as
everywhere else (images in subfolders also get the ``folder`` label).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..stimuli.labels import label_columns, labels_path

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
    def read(cls, path: PathLike | None, stimulus_ids: Sequence[str]) -> StimulusLabels:
        """Labels of ``stimulus_ids`` from their stimulus folder (or its ``labels.csv``), read
        as everywhere else (:func:`actpipe.stimuli.labels.label_columns`: the ``folder``
        label of images in subfolders, then the columns of ``labels.csv``; a stimulus without
        a row is an error naming it)."""
        ids = list(stimulus_ids)
        source = "" if path is None else str(labels_path(path))
        return cls(ids, label_columns(path, ids), source)

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
