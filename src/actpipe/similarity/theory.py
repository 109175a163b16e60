"""Theory RDMs: what a label predicts about the dissimilarity of two stimuli.

For label values ``a`` and ``b`` of stimuli ``i`` and ``j``:

=============  ===================================================================
``categorical`` ``0`` if ``a == b`` else ``1``
``numeric``     ``|a - b|``
``log``         ``|log2 a - log2 b|`` (e.g. spatial frequency in octaves; values > 0)
``circular``    ``min(|a - b| mod T, T - |a - b| mod T)`` for period ``T`` (orientation:
                ``T = 180``, so 170° and 10° are 20° apart; phase: ``T = 360``)
=============  ===================================================================

A stimulus without a value gives NaN in every pair it belongs to (left out of comparisons).
Which kind a label gets is configured per label name (``similarity.theory``); a label that is
not configured is categorical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .distances import n_pairs

KINDS = ("categorical", "numeric", "log", "circular")


@dataclass(frozen=True)
class Theory:
    """How one label becomes a theory RDM."""

    kind: str = "categorical"
    period: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"theory kind {self.kind!r}: choose one of {', '.join(KINDS)}")
        if self.kind == "circular" and (self.period is None or not self.period > 0):
            raise ValueError("a circular theory needs a period > 0 (e.g. 180 for orientation)")

    @classmethod
    def from_config(cls, value: Any, label: str = "") -> Theory:
        """``"categorical"``, ``"numeric"``, ``"log"``, or ``{kind, period}``."""
        where = f"similarity.theory.{label}" if label else "similarity.theory"
        try:
            if isinstance(value, str):
                return cls(value)
            if isinstance(value, Mapping):
                unknown = set(value) - {"kind", "period"}
                if unknown:
                    raise ValueError(f"unknown key {sorted(unknown)[0]!r} (keys: kind, period)")
                period = value.get("period")
                return cls(value.get("kind", "categorical"), None if period is None else period)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
        raise ValueError(f"{where}: give a kind name or {{kind: circular, period: 180}}")

    def describe(self) -> str:
        if self.kind == "circular":
            return f"circular, period {self.period:g}"
        if self.kind == "log":
            return "absolute log2 difference"
        if self.kind == "numeric":
            return "absolute difference"
        return "same 0 / different 1"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "period": self.period}


def theory_for(label: str, config: Mapping[str, Any] | None) -> Theory:
    """The theory configured for ``label`` (categorical when it is not configured)."""
    if config and label in config:
        return Theory.from_config(config[label], label)
    return Theory()


def theory_rdm(values: Sequence[str], theory: Theory, label: str = "label") -> np.ndarray:
    """Condensed theory RDM over stimuli with label ``values`` (``""``: no value -> NaN)."""
    values = list(values)
    n = len(values)
    missing = np.array([v == "" for v in values])
    i, j = np.triu_indices(n, k=1)
    if theory.kind == "categorical":
        _, codes = np.unique(np.array(values, dtype=object), return_inverse=True)
        out = (codes[i] != codes[j]).astype(np.float64)
    else:
        numbers = np.full(n, np.nan)
        for k, v in enumerate(values):
            if v == "":
                continue
            try:
                numbers[k] = float(v)
            except ValueError:
                raise ValueError(
                    f"label {label!r}: value {v!r} is not a number, but similarity.theory."
                    f"{label} is {theory.kind!r}; use categorical for this label"
                ) from None
        if theory.kind == "log":
            if (numbers[~missing] <= 0).any():
                raise ValueError(f"label {label!r}: a log theory needs values > 0")
            numbers = np.log2(numbers)
        diff = np.abs(numbers[i] - numbers[j])
        if theory.kind == "circular":
            diff = np.mod(diff, theory.period)
            diff = np.minimum(diff, theory.period - diff)
        out = diff
    if missing.any():
        out[missing[i] | missing[j]] = np.nan
    assert len(out) == n_pairs(n)
    return out


def theory_condition_rdm(values: Sequence[str], theory: Theory, label: str = "label") -> np.ndarray:
    """Condensed theory RDM over the distinct label ``values`` themselves (one per condition)."""
    return theory_rdm(list(values), theory, label)
