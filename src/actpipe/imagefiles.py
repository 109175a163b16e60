"""Which files of a stimulus folder are images, and the stimulus id of each.

Standard library only: the Snakefile lists folders with this module at parse time (to count
the images of a sharded set and to notice a changed folder), and the library lists them with
the same function when it extracts, so the two always agree.

**The rule.** A file is an image of the folder when its name ends in one of the configured
extensions (``.`` + extension, compared case-insensitively; default
:data:`DEFAULT_EXTENSIONS`) and neither it nor any folder on its way from the root starts
with ``.`` (hidden files such as ``.DS_Store`` or ``._photo.jpg``, and folders such as
``.ipynb_checkpoints``, are ignored). Without ``recursive`` only files directly inside the
root count; with it, files in subfolders at any depth count too (symbolic links to folders
are followed, each real folder once). A symbolic link named like an image counts even when
its target is missing, so that the check before extraction names it.

**Stimulus ids.** A file's id is its path relative to the root without the matched
extension, with ``/`` between folders on every system: ``cats/001.jpg`` has the id
``cats/001``; ``a.b.png`` directly in the root has the id ``a.b``. Two files with the same
id (``a.png`` and ``a.jpg``) are an error naming both. Files are listed in id order
(Python string order of the ids).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import StimulusError

DEFAULT_EXTENSIONS: tuple[str, ...] = ("png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp")
"""Extensions (lower case, without the dot) listed when a set names none."""

DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
"""Largest image (width x height) decoded when a set names no limit: Pillow's own default,
about 89.5 megapixels (a 9459 x 9459 image). Larger images are refused as possible
decompression bombs."""


@dataclass(frozen=True)
class ImageFile:
    """One image of a folder as listed: its id, path, and size and mtime when listed.

    ``size`` and ``mtime_ns`` are ``-1`` for a symbolic link whose target is missing.
    """

    stimulus_id: str
    path: Path
    size: int
    mtime_ns: int

    @property
    def relative_name(self) -> str:
        """The file's path relative to the folder, with ``/`` (``cats/001.jpg``)."""
        folder = self.stimulus_id.rpartition("/")[0]
        return f"{folder}/{self.path.name}" if folder else self.path.name


def normalise_extensions(extensions: Iterable[str] | None) -> tuple[str, ...]:
    """Extensions as compared: lower case, without a leading dot, no repeats, in order.

    ``None`` gives :data:`DEFAULT_EXTENSIONS`; an empty list or an empty or ``/``-holding
    entry is a :class:`StimulusError`.
    """
    if extensions is None:
        return DEFAULT_EXTENSIONS
    if isinstance(extensions, str):
        extensions = [extensions]
    out: list[str] = []
    for raw in extensions:
        ext = str(raw).strip().lower().lstrip(".")
        if not ext or "/" in ext or "\\" in ext:
            raise StimulusError(
                f"extensions: {raw!r} is not a file extension; write them like [png, jpg]"
            )
        if ext not in out:
            out.append(ext)
    if not out:
        raise StimulusError("extensions: the list is empty; name at least one (e.g. [png, jpg])")
    return tuple(out)


def _matched_extension(name: str, suffixes: tuple[str, ...]) -> str | None:
    lower = name.lower()
    for suffix in suffixes:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return None


def _walk(root: Path, recursive: bool) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """``(relative folder prefix, entry)`` of every non-hidden file-like entry."""
    seen: set[str] = set()
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise StimulusError(f"cannot list stimulus folder {str(folder)!r}: {exc}") from exc
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if recursive:
                    stack.append((f"{prefix}{entry.name}/", Path(entry.path)))
                continue
            if entry.is_file() or entry.is_symlink():
                yield prefix, entry


def _check_root(root: Path) -> None:
    if not root.exists():
        raise StimulusError(f"stimulus folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise StimulusError(f"stimulus folder {str(root)!r} is not a directory")


def list_image_files(
    root: str | os.PathLike[str],
    recursive: bool = False,
    extensions: Iterable[str] | None = None,
) -> list[ImageFile]:
    """The images of ``root`` by the rule of this module, in id order.

    Raises :class:`StimulusError` when the folder is missing, holds no image (naming the
    subfolders that do, when not ``recursive``) or two files share an id (naming every pair).
    """
    root = Path(root)
    _check_root(root)
    suffixes = tuple("." + e for e in normalise_extensions(extensions))
    files: list[ImageFile] = []
    for prefix, entry in _walk(root, recursive):
        suffix = _matched_extension(entry.name, suffixes)
        if suffix is None:
            continue
        try:
            st = entry.stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:  # a link to nothing: listed, so that the check names it
            size, mtime = -1, -1
        files.append(ImageFile(prefix + entry.name[: -len(suffix)], Path(entry.path), size, mtime))
    if not files:
        hint = ""
        if not recursive:
            below = subfolders_with_images(root, extensions)
            if below:
                hint = (
                    f"; its subfolders {_some(below)} hold images: set 'recursive: true' "
                    "in the stimulus set to take them (the first-level folder becomes the "
                    "label 'folder')"
                )
        raise StimulusError(
            f"stimulus folder {str(root)!r} holds no images (looked for "
            f"{', '.join('*' + s for s in suffixes)} files "
            f"{'in it and its subfolders' if recursive else 'directly inside it'}){hint}"
        )
    files.sort(key=lambda f: (f.stimulus_id, f.path.name))
    clashes = [
        (a, b) for a, b in zip(files, files[1:], strict=False) if a.stimulus_id == b.stimulus_id
    ]
    if clashes:
        pairs = "; ".join(f"{_rel(root, a.path)} and {_rel(root, b.path)}" for a, b in clashes)
        raise StimulusError(
            f"stimulus folder {str(root)!r}: {len(clashes)} stimulus id(s) are ambiguous "
            f"(files that differ only in their extension): {pairs}; rename or remove one of each"
        )
    return files


def subfolders_with_images(
    root: str | os.PathLike[str], extensions: Iterable[str] | None = None
) -> list[str]:
    """The non-hidden first-level subfolders of ``root`` holding an image at any depth.

    Each subfolder is searched only until its first image, so this stays cheap on large
    trees.
    """
    root = Path(root)
    suffixes = tuple("." + e for e in normalise_extensions(extensions))
    found = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        for _, file in _walk(Path(entry.path), recursive=True):
            if _matched_extension(file.name, suffixes):
                found.append(entry.name)
                break
    return found


def listing_digest(files: Iterable[ImageFile]) -> str:
    """sha256 over every listed file's relative name, size and mtime.

    It changes when an image is added, removed, renamed or rewritten anywhere in the listing
    (also in subfolders, whose changes leave the root folder's own mtime alone).
    """
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.stimulus_id}\0{f.path.name}\0{f.size}\0{f.mtime_ns}\n".encode())
    return digest.hexdigest()


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


__all__ = [
    "DEFAULT_EXTENSIONS",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "ImageFile",
    "list_image_files",
    "listing_digest",
    "normalise_extensions",
    "subfolders_with_images",
]
