"""Stimulus folders: the listing options of a set, its images in id order, and their labels.

Which files count and their ids follow :mod:`actpipe.imagefiles` (shared with the
Snakefile); decoding is :mod:`.decode`; ``labels.csv`` and the ``folder`` label are
:mod:`.labels`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StimulusError
from ..imagefiles import (
    DEFAULT_EXTENSIONS,
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageFile,
    list_image_files,
    normalise_extensions,
    subfolders_with_images,
)
from .labels import label_columns

log = logging.getLogger(__name__)

FOLDER_KEYS = ("recursive", "extensions", "max_image_pixels")
"""Keys of a folder set's config block that decide what is read (besides ``path``)."""


@dataclass(frozen=True)
class FolderOptions:
    """How a stimulus folder is read: the listing rule and the size guard.

    ``recursive``: take images from subfolders too (ids ``cats/001``, label ``folder``);
    ``extensions``: file extensions that are images (case-insensitive);
    ``max_image_pixels``: larger images (width x height) are refused, ``None``: no limit.
    """

    recursive: bool = False
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> FolderOptions:
        """The options of a set's config block; other keys (``source``, ``path``, ...) are
        ignored. Extensions Pillow cannot read are an error naming them."""
        block = dict(block or {})
        limit = block.get("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS)
        if limit is not None and (isinstance(limit, bool) or int(limit) < 1):
            raise StimulusError(
                f"max_image_pixels must be a positive number of pixels or null, got {limit!r}"
            )
        options = cls(
            recursive=bool(block.get("recursive", False)),
            extensions=normalise_extensions(block.get("extensions")),
            max_image_pixels=None if limit is None else int(limit),
        )
        options.check_extensions()
        return options

    def check_extensions(self) -> None:
        """Refuse extensions that no installed Pillow plugin reads."""
        from PIL import Image

        readable = {e.lstrip(".").lower() for e in Image.registered_extensions()}
        unknown = [e for e in self.extensions if e not in readable]
        if unknown:
            raise StimulusError(
                f"extensions: Pillow cannot read {', '.join('.' + e for e in unknown)} files "
                "(no installed Pillow plugin registers them); remove them from the stimulus "
                "set's 'extensions' or convert those files"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "recursive": self.recursive,
            "extensions": list(self.extensions),
            "max_image_pixels": self.max_image_pixels,
        }


@dataclass
class StimulusSet:
    """The images of one folder, in stimulus-id order, with their labels (if any).

    ``files`` holds each image as listed (size and mtime, to notice a folder that changes
    during a run); ``options`` how the folder was read.
    """

    root: Path
    ids: list[str]
    paths: list[Path]
    labels: dict[str, list[str]] = field(default_factory=dict)
    files: list[ImageFile] | None = None
    options: FolderOptions = field(default_factory=FolderOptions)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, start: int, stop: int) -> StimulusSet:
        """Rows ``start:stop`` of the set (used for sharded extraction)."""
        return StimulusSet(
            self.root,
            self.ids[start:stop],
            self.paths[start:stop],
            {k: v[start:stop] for k, v in self.labels.items()},
            None if self.files is None else self.files[start:stop],
            self.options,
        )

    def listed(self, index: int) -> ImageFile | None:
        """Image ``index`` as the listing saw it (``None`` for sets built by hand)."""
        return None if self.files is None else self.files[index]


def list_images(
    root: str | os.PathLike[str], options: FolderOptions | Mapping[str, Any] | None = None
) -> list[Path]:
    """The image files of ``root`` (the rule of :mod:`actpipe.imagefiles`), in id order."""
    options = _options(options)
    return [f.path for f in list_image_files(root, options.recursive, options.extensions)]


def image_files(
    root: str | os.PathLike[str], options: FolderOptions | Mapping[str, Any] | None = None
) -> dict[str, Path]:
    """Stimulus id -> image file of every image of ``root``, in id order (the listing of
    :func:`list_images`)."""
    options = _options(options)
    files = list_image_files(root, options.recursive, options.extensions)
    return {f.stimulus_id: f.path for f in files}


def _options(options: FolderOptions | Mapping[str, Any] | None) -> FolderOptions:
    if isinstance(options, FolderOptions):
        return options
    return FolderOptions.from_config(options)


def load_stimulus_folder(
    root: str | os.PathLike[str], options: FolderOptions | Mapping[str, Any] | None = None
) -> StimulusSet:
    """List a folder's images and attach their labels.

    ``options`` is a :class:`FolderOptions` or a folder set's config block (``recursive``,
    ``extensions``, ``max_image_pixels``; other keys ignored). Without ``recursive``,
    subfolders holding images are named in a warning. Labels are the columns of the root's
    ``labels.csv`` and, for images in subfolders, the ``folder`` label
    (:func:`actpipe.stimuli.labels.label_columns`).
    """
    root = Path(root)
    options = _options(options)
    files = list_image_files(root, options.recursive, options.extensions)
    if not options.recursive:
        below = subfolders_with_images(root, options.extensions)
        if below:
            log.warning(
                "stimulus folder %s: %d subfolder(s) hold images that are not used (%s); set "
                "'recursive: true' in the stimulus set to take them",
                root,
                len(below),
                ", ".join(below[:10]) + (" ..." if len(below) > 10 else ""),
            )
    ids = [f.stimulus_id for f in files]
    return StimulusSet(root, ids, [f.path for f in files], label_columns(root, ids), files, options)


__all__ = [
    "FOLDER_KEYS",
    "FolderOptions",
    "StimulusError",
    "StimulusSet",
    "image_files",
    "list_images",
    "load_stimulus_folder",
]
