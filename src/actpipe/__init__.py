"""actpipe: neural-network activations to HDF5, clusters and cluster paths.

The top-level namespace stays light (no torch import) so that the Snakefile and the
command line start fast; heavy modules are imported where they are used.
"""

from __future__ import annotations

from ._version import __version__

# The reading API, imported on first use (h5py and numpy only).
_READING = (
    "load_lazy_activations",
    "load_model_activations_lazy",
    "get_available_models",
    "get_available_images",
    "get_available_layers",
    "get_activation_shape",
    "read_layer",
    "iter_layer",
    "LazyActivations",
    "LayerView",
)

__all__ = ["__version__", *_READING]


def __getattr__(name: str):
    if name in _READING:
        from .storage import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'actpipe' has no attribute {name!r}")
