"""Descriptions of activation files: what ``actpipe inspect`` shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py

from ..errors import FormatError
from .files import PathLike, check_file, check_version, model_group, model_names, open_file
from .format import LAYERS_GROUP, LAYOUT, PER_STIMULUS, decode_value
from .metadata import ModelInfo


def _describe_layers(info: ModelInfo, group: h5py.Group) -> list[dict[str, Any]]:
    out = []
    for name, layer in info.layers.items():
        entry: dict[str, Any] = {
            "name": name,
            "key": layer.key or name,
            "shape": list(layer.shape),
            "dtype": str(layer.dtype),
            "attrs": layer.attrs,
        }
        if info.layout == LAYOUT:
            dset = group[LAYERS_GROUP][layer.key or name]
            entry["chunks"] = list(dset.chunks) if dset.chunks else None
            entry["compression"] = dset.compression or "none"
            entry["compression_opts"] = dset.compression_opts
            entry["virtual"] = dset.is_virtual
            entry["storage_bytes"] = None if dset.is_virtual else int(dset.id.get_storage_size())
        else:
            first = group[info.stimulus_ids[0]][layer.key or name]
            entry["chunks"] = None
            entry["compression"] = first.compression or "none"
            entry["virtual"] = False
            entry["storage_bytes"] = int(first.id.get_storage_size()) * len(info.stimulus_ids)
        out.append(entry)
    return out


def describe_model(path: PathLike, f: h5py.File, model: str) -> dict[str, Any]:
    """Layers (shape, dtype, chunks, compression, bytes on disk) and provenance of a model."""
    link = f.get(model, getlink=True)
    group = model_group(f, path, model)
    info = ModelInfo.from_group(Path(path), model, group)
    layers = _describe_layers(info, group)
    sizes = [entry["storage_bytes"] for entry in layers]
    replicates = sorted({entry["shape"][1] for entry in layers})
    return {
        "name": model,
        "link": link.filename if isinstance(link, h5py.ExternalLink) else None,
        "source": str(info.source),
        "layout": info.layout,
        "format_version": info.format_version,
        "n_stimuli": len(info.stimulus_ids),
        "n_replicates": replicates[0] if len(replicates) == 1 else replicates,
        "n_layers": len(layers),
        "storage_bytes": None if None in sizes else int(sum(sizes)),
        "layers": layers,
        "attrs": info.attrs,
    }


def describe_file(path: PathLike, model: str | None = None) -> dict[str, Any]:
    """What ``actpipe inspect`` shows, as a JSON-able dict.

    The file's kind, format, size and root attributes, then for every model (or ``model``
    only) its stimulus count, layers and provenance attributes. A model whose link target
    cannot be opened is listed with an ``error`` instead of stopping the description.
    """
    path = check_file(path)
    with open_file(path) as f:
        attrs = {key: decode_value(value) for key, value in f.attrs.items()}
        names = model_names(f)
        kind = attrs.get("kind") or ("per-model" if len(names) == 1 else "multi-model")
        out: dict[str, Any] = {
            "path": str(path),
            "size_bytes": path.stat().st_size,
            "kind": kind,
            "format_version": check_version(f.attrs, path),
            "layout": attrs.get("layout") or PER_STIMULUS,
            "attrs": attrs,
            "model_names": names,
            "models": [],
        }
        if model is not None:
            model_group(f, path, model)
        for name in names if model is None else [model]:
            try:
                out["models"].append(describe_model(path, f, name))
            except FormatError as exc:
                if model is not None:
                    raise
                out["models"].append({"name": name, "error": str(exc)})
    return out
