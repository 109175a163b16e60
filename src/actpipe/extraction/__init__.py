"""Extraction: one model on one stimulus set into one per-model HDF5 file.

:mod:`.capture` (the :class:`Capture` protocol and the reductions), :mod:`.torch_capture`
(forward hooks) and :mod:`.onnx_capture` (onnxruntime) run batches; :mod:`.backends` opens a
model for either; :mod:`.run` is the batched loop that writes the file; :mod:`.runtime` sets
process-level options (allocator, determinism).
"""

from ..errors import LayerError
from .capture import Capture, reduce_output
from .onnx_capture import OnnxCapture
from .run import ExtractionOptions, extract_activations, package_versions
from .torch_capture import TorchCapture

__all__ = [
    "Capture",
    "ExtractionOptions",
    "LayerError",
    "OnnxCapture",
    "TorchCapture",
    "extract_activations",
    "package_versions",
    "reduce_output",
]
