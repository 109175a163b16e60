"""Joining the shards of a sharded extraction into one per-model file, without copying.

Each layer of the merged file is an HDF5 virtual dataset whose row blocks map onto the
shards' datasets; stimulus ids and the jitter record (small) are copied. Readers see an
ordinary per-model file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from .._io import atomic_output
from ..errors import FormatError
from .format import (
    FORMAT_VERSION,
    JITTER,
    LAYERS_GROUP,
    LAYOUT,
    STIMULUS_IDS,
    decode_attr,
    encode_attr,
)
from .metadata import layer_datasets
from .writer import producer


def merge_shards(
    shard_files: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], model: str
) -> Path:
    """Write ``output`` whose layers are virtual datasets over ``shard_files`` (in order).

    Shard paths are stored relative to ``output``'s directory, so the folder can be moved
    as a whole. Attributes come from the first shard, with ``n_stimuli``, ``skipped_ids``
    and ``shards`` describing the whole set.
    """
    output = Path(output)
    base = output.parent.resolve()
    shards = []
    for path in shard_files:
        with h5py.File(path, "r") as f:
            if model not in f:
                raise FormatError(f"{path}: no group /{model}; is it a shard of {model!r}?")
            group = f[model]
            shards.append(
                {
                    "path": Path(path),
                    "ids": group[STIMULUS_IDS].asstr()[()].tolist(),
                    "jitter": group[JITTER][()],
                    "layers": {
                        name: (d.shape, d.dtype, dict(d.attrs), key)
                        for name, (key, d) in layer_datasets(group[LAYERS_GROUP]).items()
                    },
                    "attrs": {k: v for k, v in group.attrs.items()},
                }
            )
    first = shards[0]
    order = decode_attr(first["attrs"]["layer_order"])
    for shard in shards[1:]:
        if decode_attr(shard["attrs"]["layer_order"]) != order:
            raise FormatError(f"{shard['path']}: layers differ from {first['path']}")
    ids = [sid for shard in shards for sid in shard["ids"]]
    if len(set(ids)) != len(ids):
        raise FormatError(f"stimulus ids repeat across the shards of {output}")
    with atomic_output(output) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["layout"] = LAYOUT
        f.attrs["producer"] = producer()
        group = f.create_group(model)
        layers = group.create_group(LAYERS_GROUP)
        for name in order:
            _, dtype, attrs, key = first["layers"][name]
            n_rep, dim = first["layers"][name][0][1:]
            layout = h5py.VirtualLayout(
                shape=(len(ids), n_rep, dim), dtype=dtype, maxshape=(len(ids), n_rep, dim)
            )
            offset = 0
            for shard in shards:
                shape = shard["layers"][name][0]
                if shape[1:] != (n_rep, dim):
                    raise FormatError(
                        f"{shard['path']}: layer {name!r} has shape {shape}, "
                        f"expected (*, {n_rep}, {dim})"
                    )
                target = os.path.relpath(shard["path"].resolve(), base)
                path = f"/{model}/{LAYERS_GROUP}/{shard['layers'][name][3]}"
                source = h5py.VirtualSource(target, path, shape=shape)
                layout[offset : offset + shape[0]] = source
                offset += shape[0]
            dset = layers.create_virtual_dataset(key, layout, fillvalue=np.nan)
            for attr, value in attrs.items():
                dset.attrs[attr] = value
        group.create_dataset(
            STIMULUS_IDS, data=np.asarray(ids, dtype=object), dtype=h5py.string_dtype("utf-8")
        )
        group.create_dataset(JITTER, data=np.concatenate([s["jitter"] for s in shards]))
        for attr, value in first["attrs"].items():
            group.attrs[attr] = value
        skipped = [sid for s in shards for sid in decode_attr(s["attrs"].get("skipped_ids", "[]"))]
        group.attrs["n_stimuli"] = len(ids)
        group.attrs["skipped_ids"] = encode_attr(skipped)
        group.attrs["shards"] = encode_attr(
            [os.path.relpath(s["path"].resolve(), base) for s in shards]
        )
    return output
