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
``t_b`` are recorded per exposure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ModelError, StimulusError, TargetError
from ..stimuli import LABELS_FILE, StimulusSet

KINDS = ("predicted", "label", "index", "loss")


@dataclass(frozen=True)
class Target:
    """The target of a gradient pass (see the module docstring).

    ``column`` is the label column of ``label`` and ``loss``; ``index`` the output unit of
    ``index``; ``classes`` maps label values (as written in ``labels.csv``) to output indices.
    """

    kind: str = "predicted"
    column: str | None = None
    index: int | None = None
    classes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, value: Any, where: str = "gradients.target") -> Target:
        """``predicted``, ``{label: COLUMN, classes: {...}}``, ``{index: N}`` or ``{loss:
        COLUMN, classes: {...}}``."""
        if value is None or value == "predicted":
            return cls("predicted")
        if not isinstance(value, dict):
            raise ModelError(
                f"{where}: {value!r} is not a target; write predicted, {{label: COLUMN}}, "
                "{index: N} or {loss: COLUMN}"
            )
        kinds = [k for k in ("label", "index", "loss") if k in value]
        unknown = sorted(set(value) - {"label", "index", "loss", "classes"})
        if len(kinds) != 1 or unknown:
            raise ModelError(
                f"{where}: {value!r} must have exactly one of label, index or loss (and "
                f"classes with label or loss){f'; unknown keys {unknown}' if unknown else ''}"
            )
        kind = kinds[0]
        classes_raw = value.get("classes") or {}
        if kind == "index":
            if "classes" in value:
                raise ModelError(f"{where}: classes applies to label and loss targets only")
            index = value["index"]
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise ModelError(f"{where}: index must be an output index >= 0, got {index!r}")
            return cls("index", index=int(index))
        column = value[kind]
        if not isinstance(column, str) or not column:
            raise ModelError(f"{where}: {kind} must name a labels.csv column, got {column!r}")
        if not isinstance(classes_raw, dict):
            raise ModelError(f"{where}: classes must map label values to output indices")
        classes: dict[str, int] = {}
        for key, index in classes_raw.items():
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise ModelError(
                    f"{where}: classes maps {key!r} to {index!r}; give an output index >= 0"
                )
            classes[str(key)] = int(index)
        return cls(kind, column=column, classes=classes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (recorded in the gradient file)."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.column is not None:
            out["column"] = self.column
        if self.index is not None:
            out["index"] = self.index
        if self.classes:
            out["classes"] = dict(self.classes)
        return out

    @property
    def needs_labels(self) -> bool:
        return self.kind in ("label", "loss")

    def class_indices(self, stimuli: StimulusSet, where: str = "") -> np.ndarray | None:
        """The class index of every stimulus (``None`` when the target needs no label).

        Errors name the folder, the column, the stimuli and the value without an index.
        """
        if not self.needs_labels:
            return None
        prefix = f"{where}: " if where else ""
        assert self.column is not None
        labels_file = stimuli.root / LABELS_FILE
        if self.column not in stimuli.labels:
            have = (
                f"its columns: {', '.join(stimuli.labels)}"
                if stimuli.labels
                else f"there is no {labels_file}"
            )
            raise StimulusError(
                f"{prefix}target {self.kind}: {self.column!r} needs a label column "
                f"{self.column!r} for the stimuli of {stimuli.root} ({have})"
            )
        values = stimuli.labels[self.column]
        missing = [sid for sid, v in zip(stimuli.ids, values, strict=True) if not v.strip()]
        if missing:
            raise StimulusError(
                f"{prefix}{labels_file}: no {self.column!r} label for {len(missing)} "
                f"stimulus id(s), e.g. {missing[:5]}; the target needs a label for every example "
                "(fill them in, or use target: predicted)"
            )
        out = np.empty(len(values), dtype=np.int64)
        unknown: dict[str, str] = {}
        for i, (sid, value) in enumerate(zip(stimuli.ids, values, strict=True)):
            key = value.strip()
            if self.classes:
                index = self.classes.get(key)
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
                if self.classes
                else "values must be integer class indices, or map them with "
                "gradients.target.classes: {value: index}"
            )
            raise TargetError(
                f"{prefix}{labels_file}, column {self.column!r}: label value(s) with no class "
                f"index: {shown}; {how}"
            )
        return out

    def check_outputs(self, n_outputs: int, indices: np.ndarray | None, where: str = "") -> None:
        """Every index the target will use exists among the model's ``n_outputs`` outputs."""
        prefix = f"{where}: " if where else ""
        if self.kind == "index" and self.index is not None and self.index >= n_outputs:
            raise TargetError(
                f"{prefix}target index {self.index} but the model has {n_outputs} outputs "
                f"(0..{n_outputs - 1})"
            )
        if indices is not None and len(indices) and int(indices.max()) >= n_outputs:
            bad = int(indices.max())
            values = (
                [v for v, i in self.classes.items() if i == bad] if self.classes else [str(bad)]
            )
            raise TargetError(
                f"{prefix}target {self.kind}: {self.column!r}: label value {values[0]!r} has "
                f"class index {bad} but the model has {n_outputs} outputs (0..{n_outputs - 1}); "
                "fix gradients.target.classes"
            )

    def select(
        self, logits: torch.Tensor, label_index: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(t, c)``: the target of every exposure ``(batch,)`` (in the graph) and the
        output index it used ``(batch,)``. ``label_index`` holds the class index of every
        exposure for ``label`` and ``loss``."""
        batch = logits.shape[0]
        if self.kind == "predicted":
            index = logits.detach().argmax(dim=1)
        elif self.kind == "index":
            assert self.index is not None
            index = torch.full((batch,), self.index, dtype=torch.long, device=logits.device)
        else:
            if label_index is None:
                raise TargetError(f"target {self.kind} needs the class index of every exposure")
            index = label_index.to(logits.device)
        if self.kind == "loss":
            dtype = torch.promote_types(logits.dtype, torch.float32)  # float16 logits: float32
            value = torch.nn.functional.cross_entropy(logits.to(dtype), index, reduction="none")
        else:
            value = logits.gather(1, index[:, None])[:, 0]
        return value, index

    def describe(self) -> str:
        """The target in words (logs, reports)."""
        if self.kind == "predicted":
            return "the top logit of each exposure"
        if self.kind == "index":
            return f"output {self.index}"
        if self.kind == "label":
            return f"the logit of the {self.column!r} label"
        return f"the cross-entropy loss against the {self.column!r} label"


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
