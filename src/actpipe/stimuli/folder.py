"""Stimulus folders: listing images, attaching their labels and decoding images to RGB."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import StimulusError
from .labels import label_columns

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class StimulusSet:
    """The images of one folder, in stimulus-id order, with their labels (if any)."""

    root: Path
    ids: list[str]
    paths: list[Path]
    labels: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, start: int, stop: int) -> StimulusSet:
        """Rows ``start:stop`` of the set (used for sharded extraction)."""
        return StimulusSet(
            self.root,
            self.ids[start:stop],
            self.paths[start:stop],
            {k: v[start:stop] for k, v in self.labels.items()},
        )


def list_images(root: str | os.PathLike[str]) -> list[Path]:
    """The PNG/JPEG files directly inside ``root`` (not recursive), sorted by stimulus id."""
    root = Path(root)
    if not root.exists():
        raise StimulusError(f"stimulus folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise StimulusError(f"stimulus folder {str(root)!r} is not a directory")
    files = [
        p
        for p in root.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    if not files:
        raise StimulusError(
            f"stimulus folder {str(root)!r} holds no images (looked for "
            f"{', '.join(IMAGE_SUFFIXES)} files directly inside it)"
        )
    files.sort(key=lambda p: (p.stem, p.name))
    seen: dict[str, Path] = {}
    for p in files:
        if p.stem in seen:
            raise StimulusError(
                f"stimulus id {p.stem!r} is ambiguous in {str(root)!r}: both "
                f"{seen[p.stem].name} and {p.name} exist; rename one of them"
            )
        seen[p.stem] = p
    return files


def load_stimulus_folder(root: str | os.PathLike[str]) -> StimulusSet:
    """List a folder's images and attach the columns of its ``labels.csv`` when present."""
    root = Path(root)
    paths = list_images(root)
    ids = [p.stem for p in paths]
    return StimulusSet(root, ids, paths, label_columns(root, ids))


def load_rgb(path: str | os.PathLike[str], background: tuple[float, float, float]) -> np.ndarray:
    """Decode an image to float32 RGB in [0, 1], shape ``(H, W, 3)``.

    Grayscale and palette images become RGB; images with transparency (RGBA, LA, palette
    with a transparent index) are alpha-composited onto ``background`` (RGB in [0, 1]);
    16-bit images are scaled by 65535, 8-bit by 255. Raises :class:`StimulusError` naming
    the file when it cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(img, dtype=np.float64)
                scale = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
                gray = (array / scale).astype(np.float32)
                return np.repeat(gray[:, :, None], 3, axis=2)
            if mode == "F":
                gray = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
                return np.repeat(gray[:, :, None], 3, axis=2)
            if mode in ("RGBA", "LA", "PA") or (mode == "RGB" and "transparency" in img.info):
                rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
                alpha = rgba[:, :, 3:4]
                bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
                return (rgba[:, :, :3] * alpha + bg * (1.0 - alpha)).astype(np.float32)
            return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise StimulusError(f"cannot read image {str(path)!r}: {exc}") from exc
