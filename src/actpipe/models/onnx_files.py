"""The files of an ONNX model: the ``.onnx`` graph and the external data it references.

A graph saved with external data (``onnx.save(..., save_as_external_data=True,
location="model.onnx.data")``, or torch's exporter for models over 2 GB, which writes one file
per tensor) keeps its tensors in files beside the ``.onnx`` file, named by each tensor's
``location`` (relative to the ``.onnx`` file's folder) with an ``offset`` and ``length``.

:func:`check_external_data` finds missing, escaping or truncated data files before any job
runs; :func:`onnx_checksum` is the checksum actpipe records for a model: the sha256 of the
``.onnx`` file when it has no external data, otherwise the sha256 of the lines
``"{sha256 of file}  {file name}\\n"`` (the format of ``sha256sum``) for the ``.onnx`` file
followed by every external data file, sorted by location. In the model's folder,
``sha256sum model.onnx model.onnx.data | sha256sum`` gives the same digest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .._io import sha256_file
from ..errors import ModelError


def iter_tensors(graph: Any) -> Iterator[Any]:
    """Every ``TensorProto`` of ``graph`` and its subgraphs: initializers, sparse
    initializers, and tensor attributes of nodes (``Constant`` values)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from iter_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from iter_tensors(subgraph)


@dataclass(frozen=True)
class ExternalTensor:
    """Where one tensor's data lies: ``location`` (relative to the .onnx file's folder),
    ``offset`` and ``length`` in bytes (``None``: to the end of the file)."""

    name: str
    location: str
    offset: int = 0
    length: int | None = None


def external_tensors(model: Any) -> list[ExternalTensor]:
    """The tensors of ``model`` whose data is kept outside the .onnx file."""
    import onnx

    out = []
    for tensor in iter_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        length = entries.get("length")
        out.append(
            ExternalTensor(
                tensor.name,
                entries.get("location", ""),
                int(entries.get("offset") or 0),
                int(length) if length else None,
            )
        )
    return out


def external_data_files(model: Any) -> list[str]:
    """The locations of the external data files of ``model``, sorted, each once."""
    return sorted({t.location for t in external_tensors(model)})


def check_external_data(model: Any, path: str | os.PathLike[str], where: str) -> None:
    """Raise :class:`ModelError` when a data file of ``model`` (loaded from ``path``) is
    missing, lies outside the .onnx file's folder, or is shorter than its tensors need."""
    path = Path(path)
    folder = path.parent
    sizes: dict[str, int] = {}
    for tensor in external_tensors(model):
        location = tensor.location
        parts = PurePosixPath(location.replace("\\", "/")).parts
        if not location or PurePosixPath(location).is_absolute() or ".." in parts:
            raise ModelError(
                f"{where}: {str(path)!r} keeps tensor {tensor.name!r} in {location!r}, which "
                "is not a file name beside the .onnx file; re-save the model with "
                "onnx.save(model, path, save_as_external_data=True, location='model.onnx.data')"
            )
        if location not in sizes:
            data = folder / location
            if not data.is_file():
                raise ModelError(
                    f"{where}: {str(path)!r} keeps its weights in the external data file "
                    f"{location!r}, which is missing (looked for {str(data)!r}); copy that "
                    "file next to the .onnx file, keeping its name"
                )
            sizes[location] = data.stat().st_size
        end = tensor.offset + (tensor.length or 0)
        if end > sizes[location]:
            raise ModelError(
                f"{where}: the external data file {str(folder / location)!r} of {str(path)!r} "
                f"has {sizes[location]} bytes but tensor {tensor.name!r} needs bytes up to "
                f"{end}: the file is truncated or belongs to another export; copy it again"
            )


@dataclass(frozen=True)
class OnnxChecksum:
    """The recorded checksum of an ONNX model (see the module docstring) and of each file.

    ``files`` maps file names (the .onnx file's name, then each external data location) to
    their sha256.
    """

    sha256: str
    files: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sha256": self.sha256}
        if len(self.files) > 1:
            out["files"] = dict(self.files)
            out["sha256_of"] = "sha256sum lines of the .onnx file and its external data files"
        return out


def onnx_checksum(
    path: str | os.PathLike[str],
    model: Any,
    cache_dir: str | os.PathLike[str] | None = None,
) -> OnnxChecksum:
    """The checksum of the .onnx file ``path`` (parsed as ``model``) and its external data.

    ``cache_dir`` keeps each file's digest keyed by path, inode, size and modification time
    (see :func:`actpipe._io.sha256_file`), so jobs sharing a model read its files once.
    """
    path = Path(path)
    own = sha256_file(path, cache_dir=cache_dir)
    locations = external_data_files(model)
    if not locations:
        return OnnxChecksum(own, {path.name: own})
    files = {path.name: own}
    for location in locations:
        files[location] = sha256_file(path.parent / location, cache_dir=cache_dir)
    text = "".join(f"{digest}  {name}\n" for name, digest in files.items())
    return OnnxChecksum(hashlib.sha256(text.encode()).hexdigest(), files)
