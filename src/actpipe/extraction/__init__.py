"""Extraction: hooks that capture layers in one pass, and the batched run to HDF5."""

from .capture import LayerCapture, LayerError, reduce_output
from .run import ExtractionOptions, extract_activations, package_versions

__all__ = [
    "ExtractionOptions",
    "LayerCapture",
    "LayerError",
    "extract_activations",
    "package_versions",
    "reduce_output",
]
