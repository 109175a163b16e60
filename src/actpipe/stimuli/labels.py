"""A stimulus folder's labels: its ``labels.csv`` (one row per stimulus, a ``stimulus_id``
column and any number of label columns: orientation, digit, category, ...) and the ``folder``
label of images in subfolders (the first part of their id: ``cats`` for ``cats/001``)."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import StimulusError

log = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"
ID_COLUMN = "stimulus_id"
FOLDER_COLUMN = "folder"


def read_labels(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """``labels.csv`` as ``{stimulus_id: {column: value}}``; needs a ``stimulus_id`` column.

    Values are stripped of surrounding white space (spreadsheets leave it); an empty cell is
    ``""``. A byte-order mark at the start of the file (Excel's UTF-8) is ignored."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or ID_COLUMN not in reader.fieldnames:
            raise StimulusError(
                f"{path}: the first line must name the columns, one of them '{ID_COLUMN}' "
                f"(found {reader.fieldnames})"
            )
        rows: dict[str, dict[str, str]] = {}
        for line, row in enumerate(reader, start=2):
            sid = row.pop(ID_COLUMN)
            if sid in rows:
                raise StimulusError(f"{path}:{line}: stimulus_id {sid!r} appears twice")
            rows[sid] = {k: (v or "").strip() for k, v in row.items() if k is not None}
    return rows


def labels_path(stimuli: str | os.PathLike[str]) -> Path:
    """The ``labels.csv`` of a stimulus folder (or the file itself when given one)."""
    path = Path(stimuli)
    return path / LABELS_FILE if path.is_dir() else path


def folder_labels(stimulus_ids: Sequence[str]) -> list[str] | None:
    """The ``folder`` label of each id: the part before its first ``/`` (``""`` for ids
    without one); ``None`` when no id has a ``/`` (a folder read without ``recursive``)."""
    if not any("/" in sid for sid in stimulus_ids):
        return None
    return [sid.partition("/")[0] if "/" in sid else "" for sid in stimulus_ids]


def label_columns(
    stimuli: str | os.PathLike[str] | None, stimulus_ids: Sequence[str]
) -> dict[str, list[str]]:
    """The label columns of ``stimulus_ids``, in their order: ``{column: [value, ...]}``.

    ``folder`` comes first when ids lie in subfolders (:func:`folder_labels`), then the
    columns of ``labels.csv``; ``stimuli`` is a stimulus folder or its ``labels.csv`` (no
    file, or ``None``: no such columns). When ``labels.csv`` has a ``folder`` column of its
    own, that column is used (with a warning if it disagrees with the subfolders). A
    stimulus without a row is an error naming it; rows of other stimuli are ignored with a
    warning.
    """
    folders = folder_labels(stimulus_ids)
    derived = {} if folders is None else {FOLDER_COLUMN: folders}
    if stimuli is None:
        return derived
    path = labels_path(stimuli)
    if not path.is_file():
        return derived
    rows = read_labels(path)
    missing = [sid for sid in stimulus_ids if sid not in rows]
    if missing:
        hint = (
            " (ids of images in subfolders are their relative paths without extension, "
            "e.g. 'cats/001')"
            if folders is not None
            else ""
        )
        raise StimulusError(
            f"{path}: no row for {len(missing)} stimulus id(s), e.g. {missing[:5]}{hint}; add "
            "them or remove labels.csv"
        )
    extra = len(rows) - len(set(stimulus_ids))
    if extra > 0:
        unused = [sid for sid in rows if sid not in set(stimulus_ids)]
        log.warning(
            "%s: %d label row(s) without a stimulus ignored, e.g. %s", path, extra, unused[:5]
        )
    columns = list(next(iter(rows.values())).keys()) if rows else []
    table = {col: [rows[sid].get(col, "") for sid in stimulus_ids] for col in columns}
    if folders is not None and FOLDER_COLUMN in table:
        differ = sum(a != b for a, b in zip(table[FOLDER_COLUMN], folders, strict=True))
        if differ:
            log.warning(
                "%s: its 'folder' column is used as the folder label; it differs from the "
                "subfolder of %d stimulus id(s)",
                path,
                differ,
            )
        return table
    return {**derived, **table}
