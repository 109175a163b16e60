"""A model's ``gradients:`` block, parsed: the target, what is stored, the batch size.

Standard library only: the workflow reads these blocks at parse time.

Targets (written in the config as):

* ``predicted`` (default): the top logit of each exposure;
* ``{label: COLUMN, classes: {value: index}}``: the logit of the class of the stimulus's
  value in the ``labels.csv`` column ``COLUMN``;
* ``{index: N}``: output ``N``;
* ``{loss: COLUMN, classes: {value: index}}``: the cross-entropy against that class.

Without ``classes`` a label value must be an integer class index (``"7"`` -> 7).
:mod:`.targets` computes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelError
from ..results import ACTIVATION_X_GRADIENT, GRADIENT, QUANTITIES

KINDS = ("predicted", "label", "index", "loss")


@dataclass(frozen=True)
class Target:
    """The scalar whose gradient is taken, per exposure (see the module docstring).

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
        classes_raw = value.get("classes") or {}
        if not isinstance(classes_raw, dict):
            raise ModelError(f"{where}: classes must map label values to output indices")
        classes: dict[str, int] = {}
        for key, index in classes_raw.items():
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise ModelError(
                    f"{where}: classes maps {key!r} to {index!r}; give an output index >= 0"
                )
            classes[str(key)] = int(index)
        return cls(kind, column=column, classes=dict(sorted(classes.items())))

    def to_config(self) -> Any:
        """The target as the config writes it (canonical: ``from_config`` gives it back)."""
        if self.kind == "predicted":
            return "predicted"
        if self.kind == "index":
            return {"index": self.index}
        out: dict[str, Any] = {self.kind: self.column}
        if self.classes:
            out["classes"] = dict(self.classes)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (recorded in the gradient file's ``target``)."""
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

    def describe(self) -> str:
        """The target in words (logs, reports)."""
        if self.kind == "predicted":
            return "the top logit of each exposure"
        if self.kind == "index":
            return f"output {self.index}"
        if self.kind == "label":
            return f"the logit of the {self.column!r} label"
        return f"the cross-entropy loss against the {self.column!r} label"


@dataclass(frozen=True)
class GradientOptions:
    """A model's ``gradients:`` block: the target, what is stored, the batch size.

    ``store`` lists ``gradient`` and/or ``activation_x_gradient`` (default both);
    ``batch_size`` (exposures per forward and backward pass) defaults to the model's.
    """

    target: Target = field(default_factory=Target)
    store: tuple[str, ...] = QUANTITIES
    batch_size: int | None = None

    @classmethod
    def from_config(cls, block: Any, where: str = "gradients") -> GradientOptions:
        """Parse ``{target: ..., store: [...], batch_size: N}`` (``true``: all defaults)."""
        if block is True or block is None:
            block = {}
        if not isinstance(block, dict):
            raise ModelError(f"{where}: expected a mapping (target, store, batch_size)")
        unknown = sorted(set(block) - {"target", "store", "batch_size"})
        if unknown:
            raise ModelError(f"{where}: unknown key(s) {unknown}; keys: target, store, batch_size")
        store = block.get("store", list(QUANTITIES))
        if isinstance(store, str):
            store = [store]
        bad = [q for q in store if q not in QUANTITIES]
        if bad or not store:
            raise ModelError(f"{where}.store: {store!r}; list some of {', '.join(QUANTITIES)}")
        batch_size = block.get("batch_size")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ModelError(f"{where}.batch_size must be a positive integer, got {batch_size!r}")
        return cls(
            Target.from_config(block.get("target", "predicted"), f"{where}.target"),
            tuple(q for q in QUANTITIES if q in store),
            batch_size,
        )

    @property
    def primary(self) -> str:
        """The quantity in ``/{model}/layers``: activation x gradient when stored."""
        return ACTIVATION_X_GRADIENT if ACTIVATION_X_GRADIENT in self.store else GRADIENT

    def to_config(self) -> dict[str, Any]:
        """The block as the config writes it, every default filled in (canonical)."""
        out: dict[str, Any] = {"store": list(self.store), "target": self.target.to_config()}
        if self.batch_size is not None:
            out["batch_size"] = self.batch_size
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (recorded in the gradient file's ``gradients``)."""
        return {
            "target": self.target.to_dict(),
            "store": list(self.store),
            "batch_size": self.batch_size,
        }
