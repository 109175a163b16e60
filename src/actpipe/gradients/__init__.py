"""Gradients: what each layer contributes to a model's output, per exposure.

:mod:`.targets` defines the scalar whose gradient is taken (the top logit, a label's logit, a
fixed output, or the cross-entropy loss); :mod:`.capture` captures every configured layer's
output and its gradient in one forward and one backward pass per batch and reduces the
gradient and activation x gradient with the layer's reduction; :mod:`.run` runs the pass over
a stimulus set with the activation pass's batches and writer, into a gradient file in the
activation file's layout (docs/format.md).
"""

from ..errors import TargetError
from .capture import GradientBatch, GradientCapture
from .run import GradientOptions, compute_gradients
from .targets import KINDS, Target

__all__ = [
    "KINDS",
    "GradientBatch",
    "GradientCapture",
    "GradientOptions",
    "Target",
    "TargetError",
    "compute_gradients",
]
