"""Image files as people's folders hold them, built from scratch with Pillow (or by hand).

Every builder writes one file and returns what an upright, 8-bit RGB reading of it must give
(where that is defined), computed with numpy rather than with the code under test.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ORIENTATION = 0x0112
"""The EXIF tag holding the orientation."""


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like uint8 RGB image (gradients plus a little seeded noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    base = np.stack([xx, yy, 0.5 + 0.5 * np.sin(6 * xx + 4 * yy)], axis=2) * 200 + 20
    noisy = base + rng.normal(0, 6, base.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that a viewer applying EXIF ``orientation`` shows
    ``upright`` (EXIF 2.32, tag 274: the transformation the viewer applies, inverted)."""
    if orientation == 1:
        return upright
    if orientation == 2:  # viewer mirrors left-right
        return upright[:, ::-1]
    if orientation == 3:  # viewer rotates 180
        return upright[::-1, ::-1]
    if orientation == 4:  # viewer mirrors top-bottom
        return upright[::-1, :]
    if orientation == 5:  # viewer transposes (mirror along the main diagonal)
        return upright.swapaxes(0, 1)
    if orientation == 6:  # viewer rotates 90 clockwise: store it 90 counter-clockwise
        return np.rot90(upright, 1)
    if orientation == 7:  # viewer transposes along the anti-diagonal
        return np.rot90(upright, 2).swapaxes(0, 1)
    if orientation == 8:  # viewer rotates 90 counter-clockwise: store it 90 clockwise
        return np.rot90(upright, -1)
    raise ValueError(orientation)


def with_orientation(path: Path, upright: np.ndarray, orientation: int, **save) -> Path:
    """Write ``upright`` as a camera would with EXIF ``orientation`` (Pillow's Exif API)."""
    stored = np.ascontiguousarray(stored_for_orientation(upright, orientation))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(stored).save(path, exif=exif, **save)
    return path


def block_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB made of uniform 8x8 blocks: a 4:4:4 JPEG at quality 100 of it decodes the
    same whichever way it was rotated before encoding (only DC coefficients)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(30, 225, (height // 8, width // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)


def frames(path: Path, colours: list[tuple[int, int, int]], size=(12, 10), **save) -> Path:
    """A multi-frame file (animated GIF/WebP/APNG, multi-page TIFF) of uniform frames."""
    images = [Image.new("RGB", size, c) for c in colours]
    images[0].save(path, save_all=True, append_images=images[1:], **save)
    return path


def palette_with_transparency(path: Path) -> tuple[Path, np.ndarray]:
    """A 2x2 palette PNG with a transparent index; returns ``(path, RGBA uint8 pixels)``."""
    img = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), "P")
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    img.save(path, transparency=1)
    rgba = np.array(
        [[[255, 0, 0, 255], [0, 255, 0, 0]], [[0, 0, 255, 255], [0, 255, 0, 0]]], np.uint8
    )
    return path, rgba


def truncated_jpeg(path: Path, keep: float = 0.5) -> Path:
    """A JPEG cut after ``keep`` of its bytes (a copy interrupted half-way)."""
    Image.fromarray(photo(48, 64)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def text_named_png(path: Path) -> Path:
    path.write_text("these are notes, not an image\n")
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` 1-bit pixels.

    The compressed data holds only the first rows: a reader that trusts the header and
    allocates would ask for width x height pixels; nothing should get that far.
    """
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * 4, 9)
    signature = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(
        signature + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")
    )
    return path


def cmyk_jpeg(path: Path, rgb: np.ndarray) -> Path:
    """``rgb`` stored as a CMYK JPEG (as print workflows and some cameras write them)."""
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    return path


__all__ = [
    "block_image",
    "cmyk_jpeg",
    "frames",
    "palette_with_transparency",
    "photo",
    "png_bomb",
    "stored_for_orientation",
    "text_named_png",
    "truncated_jpeg",
    "with_orientation",
]
