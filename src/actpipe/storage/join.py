"""The per-set file: every model of a stimulus set behind HDF5 external links (no copy)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from .._io import atomic_output
from .format import FORMAT_VERSION, LAYOUT, encode_attr
from .writer import producer


def join_activations(
    out_path: str | os.PathLike[str], model_files: dict[str, str | os.PathLike[str]]
) -> Path:
    """Write ``out_path`` with one external link ``/{model}`` per entry of ``model_files``.

    The workflow's ``join_activations`` rule calls this (the per-set file).

    Link targets are stored relative to ``out_path``'s directory, so the results folder can
    be moved or copied as a whole. HDF5 resolves them relative to the joining file.
    """
    out_path = Path(out_path)
    base = out_path.parent.resolve()
    with atomic_output(out_path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["layout"] = LAYOUT
            f.attrs["kind"] = "joined"
            f.attrs["producer"] = producer()
            f.attrs["models"] = encode_attr(list(model_files))
            for model, path in model_files.items():
                target = os.path.relpath(Path(path).resolve(), base)
                with h5py.File(path, "r") as src:
                    if model not in src:
                        raise KeyError(f"{path}: has no group /{model} to link to")
                f[model] = h5py.ExternalLink(target, f"/{model}")
    return out_path
