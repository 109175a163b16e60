"""The HDF5 storage format: layout constants, the writer and the per-set join."""

from .format import FORMAT_VERSION, FormatError, StorageOptions, decode_attr, layer_path
from .join import join_models
from .shards import merge_shards
from .writer import ActivationWriter

__all__ = [
    "FORMAT_VERSION",
    "ActivationWriter",
    "FormatError",
    "StorageOptions",
    "decode_attr",
    "join_models",
    "layer_path",
    "merge_shards",
]
