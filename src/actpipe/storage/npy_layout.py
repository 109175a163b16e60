"""The per-example NumPy layout: one folder per layer, one ``.npy`` file per example.

This is how an ONNX backend for a cluster-path dashboard stores activations::

    DIR/                       (its name is the default model name)
        metadata.json          optional; its "layers" list gives the layer order
        conv1/0.npy 1.npy ...  one array per example: {layer}/{example_id}.npy
        conv2/0.npy 1.npy ...
        set_01/                cluster sets, images/: not layers (they hold no .npy file)
        labels.npy ...         files directly in DIR are not layers

:func:`import_npy_layout` converts such a directory into one layer-major activation file,
streaming: at most about ``block_bytes`` of one layer is held at a time.

* **Examples**: the file names without ``.npy``, in *natural order* (:func:`natural_key`:
  runs of digits compare as numbers, so ``2`` < ``10``); every layer must hold the same ids.
* **Layers**: the ``layers`` argument when given; else the ``layers`` list of
  ``metadata.json`` when present (layer folders it does not list follow in natural order,
  with a warning); else every sub-folder in natural order. Sub-folders named ``set_*`` or
  ``images`` that hold no ``.npy`` file, and hidden ones, are not layers; any other folder
  without ``.npy`` files is an error (pass ``layers`` to leave it out).
* **Values**: any numeric shape, flattened in C order; every file of a layer must have the
  same shape, recorded as ``original_shape``. One exposure per example (``n_replicates`` 1),
  unless ``replicates_first``: then the first axis counts exposures and the rest are the
  features. Bool, integer and float arrays are stored as float32 (or float16); object,
  string, complex and structured arrays are refused, and nothing is unpickled.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError
from .blocks import READ_BLOCK_BYTES
from .format import JITTER_FIELDS, StorageOptions
from .writer import ActivationWriter

PathLike = str | os.PathLike[str]

NPY_LAYOUT = "per-example-npy"
NPY_SUFFIX = ".npy"
METADATA_FILE = "metadata.json"
"""The backend's description of the folder: ``{"num_examples", "layers", "k"}``."""
SET_FOLDER = re.compile(r"set_.*")
"""Sub-folders of cluster-path sets (``set_01``, ...), beside the layer folders."""
IMAGES_FOLDER = "images"
_NUMERIC_KINDS = "biuf"

log = logging.getLogger(__name__)


def natural_key(text: str) -> tuple[tuple[Any, ...], str]:
    """Sort key comparing runs of digits as numbers: ``2`` < ``10`` < ``a2`` < ``a10``.

    Other text compares by code point. Names equal as numbers (``01`` and ``1``) are ordered
    by the text itself, so the order is total and the same on every machine.
    """
    parts = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), text


def natural_sorted(names: Sequence[str]) -> list[str]:
    """``names`` in natural order (:func:`natural_key`)."""
    return sorted(names, key=natural_key)


def is_npy_layout(path: PathLike) -> bool:
    """Whether ``path`` is a directory (the per-example NumPy layout) rather than a file."""
    return Path(path).is_dir()


@dataclass(frozen=True)
class NpyLayer:
    """One layer folder: its name, path and example ids (natural order)."""

    name: str
    folder: Path
    ids: tuple[str, ...]


@dataclass(frozen=True)
class NpyFolder:
    """A model's folder: its layers in import order, its ``metadata.json`` (or None), and
    where the order came from (``argument``, ``metadata.json`` or ``folders``)."""

    root: Path
    layers: list[NpyLayer]
    metadata: dict[str, Any] | None
    layers_from: str


def _example_ids(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return [
            e.name[: -len(NPY_SUFFIX)]
            for e in entries
            if e.name.endswith(NPY_SUFFIX) and not e.name.startswith(".") and e.is_file()
        ]


def _backend_metadata(root: Path) -> dict[str, Any] | None:
    path = root / METADATA_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormatError(
            f"{path}: not readable as JSON ({exc}); fix it, remove it, or choose the layers "
            "with --layer"
        ) from exc
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a JSON object with a 'layers' list")
    layers = data.get("layers")
    if layers is not None and not (
        isinstance(layers, list) and all(isinstance(x, str) and x for x in layers)
    ):
        raise FormatError(f"{path}: 'layers' must be a list of layer folder names, got {layers!r}")
    return data


def find_layers(root: PathLike, layers: Sequence[str] | None = None) -> NpyFolder:
    """The layer folders of ``root`` in import order (see the module docstring).

    Checks that every layer holds at least one ``.npy`` file and that all hold the same
    example ids; raises :class:`FormatError` naming the folder otherwise.
    """
    root = Path(root)
    if not root.is_dir():
        raise FormatError(f"{root}: not a directory")
    if isinstance(layers, str):
        layers = [layers]
    metadata = _backend_metadata(root)
    folders: dict[str, list[str]] = {}
    for entry in sorted(os.scandir(root), key=lambda e: natural_key(e.name)):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        ids = _example_ids(Path(entry.path))
        if not ids and (SET_FOLDER.fullmatch(entry.name) or entry.name == IMAGES_FOLDER):
            continue
        folders[entry.name] = ids
    if layers is not None:
        chosen, layers_from = list(layers), "argument"
        if len(set(chosen)) != len(chosen):
            raise FormatError(f"{root}: a layer is named twice in {chosen}")
        for name in chosen:
            if name not in folders:
                raise FormatError(
                    f"{root}: no layer folder {name!r}; layer folders: {', '.join(folders)}"
                )
    elif metadata is not None and metadata.get("layers"):
        chosen, layers_from = list(metadata["layers"]), METADATA_FILE
        missing = [name for name in chosen if name not in folders]
        if missing:
            raise FormatError(
                f"{root / METADATA_FILE} lists layer(s) {missing} that have no folder in {root}; "
                "restore them or choose the layers with --layer"
            )
        extra = [name for name in folders if name not in chosen]
        if extra:
            log.warning(
                "%s: folder(s) %s are not in %s's layers; imported after them",
                root,
                extra,
                METADATA_FILE,
            )
        chosen += extra
    else:
        chosen, layers_from = list(folders), "folders"
    if not chosen:
        loose = _example_ids(root)
        hint = (
            f" It holds {len(loose)} .npy file(s) itself: is it one layer's folder? Pass the "
            "folder above it."
            if loose
            else ""
        )
        raise FormatError(
            f"{root}: no layer folders; expected one sub-folder per layer, each holding one "
            f"{{example_id}}.npy per example.{hint}"
        )
    for name in chosen:
        if not folders[name]:
            raise FormatError(
                f"{root / name}: layer folder holds no .npy file (expected one "
                "{example_id}.npy per example); remove it or choose the layers with --layer"
            )
    found = [NpyLayer(n, root / n, tuple(natural_sorted(folders[n]))) for n in chosen]
    _check_same_ids(root, found)
    return NpyFolder(root, found, metadata, layers_from)


def _check_same_ids(root: Path, layers: list[NpyLayer]) -> None:
    union = set().union(*(layer.ids for layer in layers))
    problems = []
    for layer in layers:
        missing = natural_sorted(list(union.difference(layer.ids)))
        if missing:
            shown = ", ".join(f"{m}.npy" for m in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            problems.append(f"{layer.name}/ lacks {len(missing)} file(s): {shown}{more}")
    if problems:
        raise FormatError(
            f"{root}: every layer folder must hold the same examples; "
            + "; ".join(problems)
            + " (re-extract them, or remove the examples from every layer)"
        )


def load_npy(path: PathLike) -> np.ndarray:
    """One example's array, read without unpickling; numeric dtypes only."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise FormatError(
                f"{path}: holds Python objects (pickled data), which actpipe never loads; save "
                "a numeric array instead, e.g. np.save(path, np.asarray(x, dtype=np.float32))"
            ) from exc
        raise FormatError(f"{path}: not a readable .npy array ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise FormatError(f"{path}: not a readable .npy array ({exc})") from exc
    if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
        close = getattr(array, "close", None)
        if close is not None:
            close()
        raise FormatError(f"{path}: an .npz archive, not one .npy array")
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise FormatError(
            f"{path}: array of dtype {array.dtype} cannot be imported; activations must be "
            "bool, integer or float arrays"
        )
    return array


@dataclass(frozen=True)
class _Shape:
    """How every array of a layer is laid out."""

    shape: tuple[int, ...]
    dtype: np.dtype
    n_replicates: int
    feature_shape: tuple[int, ...]

    @property
    def feature_dim(self) -> int:
        return math.prod(self.feature_shape)


def _layer_shape(layer: NpyLayer, replicates_first: bool) -> _Shape:
    first = layer.folder / f"{layer.ids[0]}{NPY_SUFFIX}"
    array = load_npy(first)
    shape = tuple(array.shape)
    if replicates_first:
        if not shape:
            raise FormatError(
                f"{first}: a 0-d array has no replicate axis; drop --replicates-first"
            )
        n_rep, features = shape[0], shape[1:]
    else:
        n_rep, features = 1, shape
    if n_rep == 0 or math.prod(features) == 0:
        raise FormatError(f"{first}: array of shape {shape} holds no values")
    return _Shape(shape, array.dtype, n_rep, features)


def import_npy_layout(
    root: PathLike,
    out: PathLike,
    model: str | None = None,
    *,
    layers: Sequence[str] | None = None,
    replicates_first: bool = False,
    options: StorageOptions | None = None,
    block_bytes: int = READ_BLOCK_BYTES,
) -> Path:
    """Convert a per-example NumPy directory into one layer-major activation file ``out``.

    ``model`` names the model (default: the directory's name). See the module docstring for
    the rules; ``out`` appears only when complete, and only if every file was usable.
    """
    root = Path(root)
    out = Path(out)
    folder = find_layers(root, layers)
    found = folder.layers
    name = model if model is not None else root.resolve().name
    if not name or "/" in name or name.startswith("."):
        raise FormatError(
            f"{root}: {name!r} cannot name a model (readers skip names starting with '.'); "
            "give one with --model"
        )
    shapes = {layer.name: _layer_shape(layer, replicates_first) for layer in found}
    replicates = {s.n_replicates for s in shapes.values()}
    if len(replicates) > 1:
        counts = {n: s.n_replicates for n, s in shapes.items()}
        raise FormatError(
            f"{root}: with --replicates-first every layer needs the same number of "
            f"replicates (first axis); found {counts}"
        )
    n_rep = replicates.pop()
    ids = list(found[0].ids)
    recorded = (folder.metadata or {}).get("num_examples")
    if isinstance(recorded, int) and recorded != len(ids):
        log.warning(
            "%s: %s says num_examples %d, but the layer folders hold %d examples",
            root,
            METADATA_FILE,
            recorded,
            len(ids),
        )
    options = options or StorageOptions()
    with ActivationWriter(out, name, len(ids), n_rep, options) as writer:
        for layer in found:
            shape = shapes[layer.name]
            writer.add_layer(
                layer.name,
                shape.feature_dim,
                shape.feature_shape,
                {"name": layer.name, "source_dtype": str(shape.dtype)},
            )
        for layer in found:
            _write_layer(writer, layer, ids, shapes[layer.name], block_bytes)
        attrs: dict[str, Any] = {
            "imported_from": str(root),
            "imported": {
                "layout": NPY_LAYOUT,
                "layers_from": folder.layers_from,
                "replicates_first": replicates_first,
                "metadata": folder.metadata,
            },
        }
        return writer.finish(ids, attrs)


def _write_layer(
    writer: ActivationWriter, layer: NpyLayer, ids: list[str], shape: _Shape, block_bytes: int
) -> None:
    """Read the layer's files in id order and write them in blocks of about ``block_bytes``."""
    row_bytes = shape.n_replicates * shape.feature_dim * 4
    step = max(1, block_bytes // max(1, row_bytes))
    nan = np.full((step, shape.n_replicates, len(JITTER_FIELDS)), np.nan)
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        block = np.empty((len(chunk), shape.n_replicates, shape.feature_dim), dtype=np.float32)
        for row, sid in enumerate(chunk):
            path = layer.folder / f"{sid}{NPY_SUFFIX}"
            array = load_npy(path)
            if array.shape != shape.shape:
                raise FormatError(
                    f"{path}: shape {array.shape}, but {layer.ids[0]}{NPY_SUFFIX} of layer "
                    f"{layer.name!r} has {shape.shape}; every example of a layer needs the "
                    "same shape"
                )
            block[row] = array.reshape(shape.n_replicates, shape.feature_dim)
        writer.write_rows(start, nan[: len(chunk)], {layer.name: block})
