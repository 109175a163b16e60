"""The HDF5 storage format: layout constants (:mod:`.format`), writing (:mod:`.writer`), the
per-set join (:mod:`.join`), merging files of one model (:mod:`.merge`, and the shard merge
:mod:`.shards` built on it), reading (:mod:`.reader` and the modules behind it), conversion,
appending and validation."""

from ..errors import FormatError
from .format import FORMAT_VERSION, StorageOptions, decode_attr, layer_path
from .join import join_activations
from .merge import merge_files
from .shards import merge_shards
from .writer import ActivationWriter

__all__ = [
    "FORMAT_VERSION",
    "ActivationWriter",
    "FormatError",
    "StorageOptions",
    "decode_attr",
    "join_activations",
    "layer_path",
    "merge_files",
    "merge_shards",
]
