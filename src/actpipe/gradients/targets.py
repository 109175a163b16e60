"""The scalar a gradient is taken of: one output of the model per exposure, or a loss.

A model's output for a batch is ``(batch, n_outputs)`` logits ``z``. For exposure ``b`` the
target ``t_b`` is:

* ``predicted`` (default): ``z[b, c]`` with ``c = argmax_j z[b, j]`` (the top logit of that
  exposure; replicates of one image may differ);
* ``{label: COLUMN}``: ``z[b, c]`` with ``c`` the class index of the stimulus's value in the
  ``labels.csv`` column ``COLUMN``;
* ``{index: N}``: ``z[b, N]``, a fixed output unit;
* ``{loss: COLUMN}``: the cross-entropy ``logsumexp_j z[b, j] - z[b, c]`` with ``c`` as for
  ``label`` (the gradient of the loss, which points away from the label).

A label value becomes a class index through ``classes: {value: index}``; without
``classes`` the value must be an integer (``"7"`` -> 7). The index used (``c``, or ``N``) and
``t_b`` are recorded per exposure. The target's configuration is :class:`.settings.Target`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import StimulusError, TargetError
from ..stimuli import LABELS_FILE, StimulusSet
from .settings import Target


def class_indices(target: Target, stimuli: StimulusSet, where: str = "") -> np.ndarray | None:
    """The class index of every stimulus (``None`` when the target needs no label).

    Errors name the folder, the column, the stimuli and the value without an index.
    """
    if not target.needs_labels:
        return None
    prefix = f"{where}: " if where else ""
    column = target.column
    assert column is not None
    labels_file = stimuli.root / LABELS_FILE
    if column not in stimuli.labels:
        have = (
            f"its columns: {', '.join(stimuli.labels)}"
            if stimuli.labels
            else f"there is no {labels_file}"
        )
        raise StimulusError(
            f"{prefix}target {target.kind}: {column!r} needs a label column {column!r} for the "
            f"stimuli of {stimuli.root} ({have})"
        )
    values = stimuli.labels[column]
    missing = [sid for sid, v in zip(stimuli.ids, values, strict=True) if not v.strip()]
    if missing:
        raise StimulusError(
            f"{prefix}{labels_file}: no {column!r} label for {len(missing)} stimulus id(s), "
            f"e.g. {missing[:5]}; the target needs a label for every example (fill them in, "
            "or use target: predicted)"
        )
    out = np.empty(len(values), dtype=np.int64)
    unknown: dict[str, str] = {}
    for i, (sid, value) in enumerate(zip(stimuli.ids, values, strict=True)):
        key = value.strip()
        if target.classes:
            index = target.classes.get(key)
        else:
            index = int(key) if _is_int(key) and int(key) >= 0 else None
        if index is None:
            unknown.setdefault(key, sid)
            continue
        out[i] = index
    if unknown:
        shown = ", ".join(f"{v!r} (e.g. {sid!r})" for v, sid in list(unknown.items())[:5])
        how = (
            "add them to gradients.target.classes"
            if target.classes
            else "values must be integer class indices, or map them with "
            "gradients.target.classes: {value: index}"
        )
        raise TargetError(
            f"{prefix}{labels_file}, column {column!r}: label value(s) with no class index: "
            f"{shown}; {how}"
        )
    return out


def check_outputs(
    target: Target, n_outputs: int, indices: np.ndarray | None, where: str = ""
) -> None:
    """Every index the target will use exists among the model's ``n_outputs`` outputs."""
    prefix = f"{where}: " if where else ""
    if target.kind == "index" and target.index is not None and target.index >= n_outputs:
        raise TargetError(
            f"{prefix}target index {target.index} but the model has {n_outputs} outputs "
            f"(0..{n_outputs - 1})"
        )
    if indices is not None and len(indices) and int(indices.max()) >= n_outputs:
        bad = int(indices.max())
        values = [v for v, i in target.classes.items() if i == bad] or [str(bad)]
        raise TargetError(
            f"{prefix}target {target.kind}: {target.column!r}: label value {values[0]!r} has "
            f"class index {bad} but the model has {n_outputs} outputs (0..{n_outputs - 1}); "
            "fix gradients.target.classes"
        )


def select(
    target: Target, logits: torch.Tensor, label_index: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t, c)``: the target of every exposure ``(batch,)`` (in the graph) and the output
    index it used ``(batch,)``. ``label_index`` holds the class index of every exposure for
    ``label`` and ``loss``."""
    batch = logits.shape[0]
    if target.kind == "predicted":
        index = logits.detach().argmax(dim=1)
    elif target.kind == "index":
        assert target.index is not None
        index = torch.full((batch,), target.index, dtype=torch.long, device=logits.device)
    else:
        if label_index is None:
            raise TargetError(f"target {target.kind} needs the class index of every exposure")
        index = label_index.to(logits.device)
    if target.kind == "loss":
        dtype = torch.promote_types(logits.dtype, torch.float32)  # float16 logits: float32
        value = torch.nn.functional.cross_entropy(logits.to(dtype), index, reduction="none")
    else:
        value = logits.gather(1, index[:, None])[:, 0]
    return value, index


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
