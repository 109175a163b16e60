"""Joining the shards of a sharded extraction into one per-model file, without copying.

Each layer of the merged file is an HDF5 virtual dataset whose row blocks map onto the
shards' datasets; stimulus ids and the jitter record (small) are copied. Readers see an
ordinary per-model file. This is :func:`~.merge.merge_files` on the shards of one set, with
the shard files recorded in the ``shards`` attribute.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .merge import merge_files


def merge_shards(
    shard_files: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], model: str
) -> Path:
    """Write ``output`` whose layers are virtual datasets over ``shard_files`` (in order).

    Shard paths are stored relative to ``output``'s directory, so the folder can be moved
    as a whole. Attributes come from the first shard, with ``n_stimuli``, ``skipped_ids``
    and ``shards`` describing the whole set.
    """
    base = Path(output).parent.resolve()
    shards = [os.path.relpath(Path(path).resolve(), base) for path in shard_files]
    return merge_files(shard_files, output, model, attrs={"shards": shards})
