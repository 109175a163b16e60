"""Opening activation files and finding a model's data in them.

A file is checked (exists, is HDF5, a format version this reader knows) before use, opened
read-only (also with ``HDF5_USE_FILE_LOCKING=FALSE``), and a model's group is found by name,
following a per-set file's external link to the per-model file; :func:`data_files` lists
every file a model's data lives in (link targets, virtual-dataset sources of merged shards).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py

from ..errors import ActivationKeyError, FormatError
from ..names import did_you_mean, no_such
from .format import FORMAT_VERSION, LAYERS_GROUP, LAYOUT, PER_STIMULUS, STIMULUS_IDS, decode_attr

CHUNK_CACHE_BYTES = 4 << 20
"""HDF5 chunk cache per open layer: one chunk (about 1 MiB) stays decoded between rows."""
H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")

PathLike = str | os.PathLike[str]


def check_file(path: PathLike) -> Path:
    """``path`` as a Path if it is an existing HDF5 file; otherwise an error saying what it is."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir() if p.suffix in H5_SUFFIXES)
        inside = f"HDF5 files in it: {', '.join(found[:10])}" if found else "it holds no .h5 file"
        raise IsADirectoryError(f"{path}: is a directory, not an activation file; {inside}")
    if not path.exists():
        parent = path.parent
        if not parent.is_dir():
            raise FileNotFoundError(f"{path}: no such file (folder {parent} does not exist)")
        siblings = sorted(p.name for p in parent.iterdir() if p.suffix in H5_SUFFIXES)
        hint = did_you_mean(path.name, siblings, "files there") if siblings else "no .h5 file there"
        raise FileNotFoundError(f"{path}: no such file; {hint}")
    if not h5py.is_hdf5(path):
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
        what = "it is empty" if size == 0 else f"{size} bytes starting with {head!r}"
        raise FormatError(f"{path}: not an HDF5 file ({what})")
    return path


def open_h5(path: PathLike) -> h5py.File:
    """Open read-only, with a chunk cache large enough to keep one chunk per layer decoded."""
    try:
        return h5py.File(path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=10007)
    except OSError as exc:
        raise FormatError(
            f"{path}: cannot be opened as HDF5 ({exc}); the file is truncated or damaged "
            "(an interrupted copy?) or still being written"
        ) from exc


def check_version(attrs: Mapping[str, Any], where: PathLike) -> int:
    """The file's ``format_version`` (0 for older per-stimulus files, which have none).

    A version newer than :data:`FORMAT_VERSION` is an error: its layout may differ in ways
    this reader would misread.
    """
    version = attrs.get("format_version")
    layout = decode_attr(attrs.get("layout", ""))
    if version is None:
        if layout == LAYOUT:
            raise FormatError(f"{where}: layout {LAYOUT!r} without a format_version attribute")
        return 0
    version = int(version)
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{where}: format_version {version} is newer than this actpipe reads (up to "
            f"{FORMAT_VERSION}); upgrade actpipe to read it"
        )
    if layout not in ("", LAYOUT, PER_STIMULUS):
        raise FormatError(f"{where}: unknown layout {layout!r} (known: {LAYOUT}, {PER_STIMULUS})")
    return version


@contextlib.contextmanager
def open_file(path: PathLike) -> Iterator[h5py.File]:
    """Open an activation file read-only after checking it; closed when the block ends."""
    path = check_file(path)
    f = open_h5(path)
    try:
        check_version(f.attrs, path)
        yield f
    finally:
        f.close()


def model_names(f: h5py.File) -> list[str]:
    """Models of an open file: a joined file's recorded order first, then the file's order.

    Names with a leading dot (a model being appended) are left out.
    """
    present = [name for name in f.keys() if not name.startswith(".")]
    recorded = decode_attr(f.attrs.get("models", "[]"))
    if isinstance(recorded, list):
        ordered = [name for name in recorded if name in present]
        return ordered + [name for name in present if name not in ordered]
    return present


def choose_model(path: PathLike, names: Sequence[str], model: str | None) -> str:
    """``model`` checked against the file's ``names``; ``None`` picks the file's only model."""
    if model is None:
        if len(names) != 1:
            raise ValueError(
                f"{path}: holds {len(names)} models ({', '.join(names)}); choose one (--model)"
            )
        return names[0]
    if model not in names:
        raise ActivationKeyError(no_such("model", model, names, str(path)))
    return model


def model_group(f: h5py.File, path: PathLike, model: str) -> h5py.Group:
    """The group of ``model``, following a joined file's external link, with clear errors."""
    names = model_names(f)
    if not isinstance(model, str) or model not in names:
        raise ActivationKeyError(no_such("model", model, names, str(path)))
    link = f.get(model, getlink=True)
    try:
        group = f[model]
    except (KeyError, OSError) as exc:
        if isinstance(link, h5py.ExternalLink):
            target = Path(path).parent / link.filename
            raise FormatError(
                f"{path}: model {model!r} links to {link.filename} ({target}), which cannot be "
                "opened: missing, still being written, or moved without this file"
            ) from exc
        raise FormatError(f"{path}: model {model!r} cannot be opened ({exc})") from exc
    if not isinstance(group, h5py.Group):
        raise FormatError(f"{path}: /{model} is not a group (a model is a group)")
    if group.file.filename != f.filename:
        check_version(group.file.attrs, group.file.filename)
    return group


def group_layout(group: h5py.Group) -> str:
    """``layer-major`` or ``per-stimulus`` for a model group."""
    layout = decode_attr(group.file.attrs.get("layout", ""))
    if layout in (LAYOUT, PER_STIMULUS):
        return layout
    if LAYERS_GROUP in group and STIMULUS_IDS in group:
        return LAYOUT
    return PER_STIMULUS


def read_ids(group: h5py.Group, layout: str) -> list[str]:
    """Stimulus ids of a model group: row order (layer-major) or the group's order."""
    if layout == LAYOUT:
        if STIMULUS_IDS not in group:
            raise FormatError(f"{group.file.filename}: {group.name} has no {STIMULUS_IDS}")
        return group[STIMULUS_IDS].asstr()[()].tolist()
    return list(group.keys())


def dataset_names(group: h5py.Group) -> list[str]:
    """Names of the datasets below ``group`` (nested ones as relative paths)."""
    names: list[str] = []
    group.visititems(
        lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
    )
    return names


def data_file(path: PathLike, model: str) -> Path:
    """The file holding ``model``'s datasets: ``path`` or, in a per-set file, the link target."""
    with open_file(path) as f:
        return Path(model_group(f, path, model).file.filename).resolve()


def data_files(path: PathLike, model: str) -> list[Path]:
    """Every file holding ``model``'s data in ``path``: the file itself, an external link's
    target (joined per-set files) and virtual-dataset sources (merged shards).

    Paths stay relative when ``path`` is (a working directory's results/ tree), so the
    records of two runs in different directories compare equal.
    """
    path = Path(os.path.normpath(path))
    files = [path]
    with h5py.File(path, "r") as f:
        link = f.get(model, getlink=True)
        holder = path
        if isinstance(link, h5py.ExternalLink):
            holder = Path(os.path.normpath(path.parent / link.filename))
            files.append(holder)
        layers = f[model].get(LAYERS_GROUP)
        if isinstance(layers, h5py.Group):
            for dset in layers.values():
                if isinstance(dset, h5py.Dataset) and dset.is_virtual:
                    for source in dset.virtual_sources():
                        name = source.file_name
                        files.append(
                            holder if name == "." else Path(os.path.normpath(holder.parent / name))
                        )
    return list(dict.fromkeys(files))
