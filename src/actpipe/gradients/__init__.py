"""Gradients: what each layer contributes to a model's output, per exposure.

:mod:`.settings` parses a model's ``gradients:`` block (standard library only, so the
workflow reads it at parse time); :mod:`.targets` computes the scalar whose gradient is taken
(the top logit, a label's logit, a fixed output, or the cross-entropy loss); :mod:`.capture`
captures every configured layer's output and its gradient in one forward and one backward
pass per batch and reduces the gradient and activation x gradient with the layer's
reduction; :mod:`.run` runs the pass over a stimulus set with the activation pass's batches
and writer, into a gradient file in the activation file's layout (docs/format.md). The names
below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import TargetError
from .settings import KINDS, GradientOptions, Target

_LAZY = {
    "GradientBatch": ".capture",
    "GradientCapture": ".capture",
    "compute_gradients": ".run",
}

__all__ = ["KINDS", "GradientOptions", "Target", "TargetError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
