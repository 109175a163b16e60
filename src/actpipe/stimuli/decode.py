"""Decoding one image file to RGB, as people's files come, and checking files before a run.

:func:`decode_image` opens a file with Pillow and returns either an 8-bit RGB
``PIL.Image.Image`` (every image with at most 8 bits per channel) or, for images with more
than 8 bits per channel (16-bit and 32-bit integer, float), a float32 array ``(H, W, 3)`` in
[0, 1]. In order:

1. **The folder has not changed.** When the listing's size and mtime of the file are given,
   a file that is gone, or whose size or mtime differ, is a :class:`FolderChangedError`.
2. **Size guard.** An image of more than ``max_image_pixels`` pixels (width x height) is
   refused before its pixels are decoded (a *decompression bomb*: a small file that would
   unpack to gigabytes).
3. **First frame** of animated GIF/WebP/APNG and multi-page TIFF files (Pillow opens frame 0).
4. **EXIF orientation** (tag 274, and its XMP copy) is applied, so photos from phones and
   cameras are upright.
5. **To RGB.** Images with transparency (RGBA, LA, PA, premultiplied modes, palette or RGB/L
   images with a transparent colour) are composited onto the background on 8-bit values:
   ``out = (c * a + b * (255 - a) + 127) // 255`` per channel, with ``b = round(255 *
   background)``. Every other mode with at most 8 bits per channel (1, L, P, CMYK, YCbCr,
   LAB, HSV, RGBX, ...) is converted with Pillow's ``convert("RGB")``, as the reference
   loaders do; ICC profiles are not applied (as in those loaders).
6. **More than 8 bits per channel** (modes ``I;16*``, ``I``, ``F``) stays float: 16-bit
   values are divided by 65535; ``I`` by 65535 when any value exceeds 255 and by 255
   otherwise; ``F`` is taken as [0, 1]; all clipped to [0, 1], grey copied to R, G and B.
   (Pillow itself reads 16-bit-per-channel RGB PNG/TIFF as 8-bit RGB.)

Any failure is a :class:`StimulusError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FolderChangedError, StimulusError
from ..imagefiles import DEFAULT_MAX_IMAGE_PIXELS, ImageFile

if TYPE_CHECKING:
    from PIL import Image as PILImage

HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
"""Pillow modes with more than 8 bits per channel: decoded to float, not to 8-bit RGB."""

ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
"""Pillow modes with an alpha channel (composited onto the background)."""

LIMIT_KEY = "stimuli.<set>.max_image_pixels"
"""How messages name the setting that raises the size guard."""

_DECODE_ERRORS = (Exception,)
"""What a decoder may raise on a damaged or odd file (Pillow raises many kinds)."""


def _raise_pillow_limit(max_image_pixels: int | None) -> None:
    """Let our own size guard decide: raise Pillow's global limit to ours when ours is higher.

    Pillow refuses images over twice its ``Image.MAX_IMAGE_PIXELS`` when opening them;
    actpipe checks ``max_image_pixels`` itself, so Pillow's limit is only ever raised (to
    the configured one, or removed for ``None``), never lowered.
    """
    from PIL import Image

    current = Image.MAX_IMAGE_PIXELS
    if current is None:
        return
    if max_image_pixels is None:
        Image.MAX_IMAGE_PIXELS = None
    elif max_image_pixels > current:
        Image.MAX_IMAGE_PIXELS = max_image_pixels


def _too_large(path: Any, width: int, height: int, limit: int) -> StimulusError:
    return StimulusError(
        f"image {str(path)!r} is {width} x {height} = {width * height:,} pixels, more than "
        f"max_image_pixels ({limit:,}): refused as a possible decompression bomb (a small "
        "file that unpacks to gigabytes). If the image is genuine, raise the limit for its "
        f"set ({LIMIT_KEY} in the config; null removes it)"
    )


def _tracked(listed: ImageFile | None) -> bool:
    """Whether the listing saw the file (not a link to nothing, already missing then)."""
    return listed is not None and listed.size >= 0


def _check_unchanged(path: Path, listed: ImageFile | None) -> None:
    if not _tracked(listed):
        return
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise FolderChangedError(
            f"image {str(path)!r} was listed when the job started but is gone now: the "
            "stimulus folder changed during the run. Let the folder settle, then run again "
            "(the job lists the folder once and reads the files it listed)"
        ) from exc
    if (st.st_size, st.st_mtime_ns) != (listed.size, listed.mtime_ns):
        raise FolderChangedError(
            f"image {str(path)!r} changed after the job listed the folder (size "
            f"{listed.size} -> {st.st_size} bytes, or its modification time): the stimulus "
            "folder changed during the run. Let the folder settle, then run again"
        )


def open_image(
    path: str | os.PathLike[str],
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    listed: ImageFile | None = None,
) -> PILImage.Image:
    """Open ``path`` with Pillow (header only) after the folder and size checks; close it."""
    from PIL import Image

    path = Path(path)
    _check_unchanged(path, listed)
    _raise_pillow_limit(max_image_pixels)
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise StimulusError(
            f"image {str(path)!r} is refused as a possible decompression bomb ({exc}). If the "
            f"image is genuine, raise the limit for its set ({LIMIT_KEY} in the config; null "
            "removes it)"
        ) from exc
    except FileNotFoundError as exc:
        if _tracked(listed):
            raise FolderChangedError(
                f"image {str(path)!r} was listed when the job started but is gone now: the "
                "stimulus folder changed during the run. Let the folder settle, then run again"
            ) from exc
        raise StimulusError(f"cannot read image {str(path)!r}: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise StimulusError(f"cannot read image {str(path)!r}: {_reason(exc)}") from exc
    width, height = img.size
    if max_image_pixels is not None and width * height > max_image_pixels:
        img.close()
        raise _too_large(path, width, height, max_image_pixels)
    return img


def _reason(exc: BaseException) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can read (wrong extension, or not an image at all)"
    text = str(exc) or type(exc).__name__
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return f"the file is truncated or damaged ({text})"
    return text


def _composite(rgba: PILImage.Image, background: Sequence[float]) -> PILImage.Image:
    """An RGBA image composited onto ``background`` on 8-bit values (module docstring).

    Pillow's ``alpha_composite`` over an opaque background computes exactly
    ``(c * a + b * (255 - a) + 127) // 255`` (checked for every c, a, b).
    """
    from PIL import Image

    bg = tuple(round(255 * float(v)) for v in background) + (255,)
    return Image.alpha_composite(Image.new("RGBA", rgba.size, bg), rgba).convert("RGB")


def _high_depth(img: PILImage.Image) -> np.ndarray:
    mode = img.mode
    if mode == "F":
        gray = np.asarray(img, dtype=np.float32)
    else:
        array = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        gray = (array / scale).astype(np.float32)
    gray = np.clip(np.nan_to_num(gray, nan=0.0), 0.0, 1.0)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _to_rgb(img: PILImage.Image, background: Sequence[float]) -> PILImage.Image | np.ndarray:
    mode = img.mode
    if mode in HIGH_DEPTH_MODES:
        return _high_depth(img)
    if mode == "La":
        img, mode = img.convert("LA"), "LA"
    transparent = "transparency" in img.info and mode in ("P", "RGB", "L")
    if mode in ALPHA_MODES or transparent:
        return _composite(img.convert("RGBA"), background)
    return img if mode == "RGB" else img.convert("RGB")


def decode_image(
    path: str | os.PathLike[str],
    background: Sequence[float] = (0.5, 0.5, 0.5),
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    listed: ImageFile | None = None,
) -> PILImage.Image | np.ndarray:
    """Decode one image file (steps in the module docstring).

    Returns an 8-bit RGB ``PIL.Image.Image``, or a float32 array ``(H, W, 3)`` in [0, 1] for
    images with more than 8 bits per channel. ``background`` is RGB in [0, 1];
    ``max_image_pixels`` (``None``: no limit) refuses larger images; ``listed`` is the
    file as the folder listing saw it (a changed or missing file is then a
    :class:`FolderChangedError`).
    """
    from PIL import ImageOps

    img = open_image(path, max_image_pixels, listed)
    out: PILImage.Image | np.ndarray | None = None
    try:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        out = _to_rgb(img, background)
        if out is img and getattr(img, "is_animated", False):
            out = img.copy()  # a multi-frame file keeps its file open: keep only the pixels
    except _DECODE_ERRORS as exc:
        raise StimulusError(f"cannot read image {str(path)!r}: {_reason(exc)}") from exc
    finally:
        if out is not img:
            img.close()
    return out


def load_rgb(
    path: str | os.PathLike[str],
    background: Sequence[float],
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """Decode an image to float32 RGB in [0, 1], shape ``(H, W, 3)``.

    :func:`decode_image`, with 8-bit values divided by 255. Raises :class:`StimulusError`
    naming the file when it cannot be decoded.
    """
    decoded = decode_image(path, background, max_image_pixels)
    if isinstance(decoded, np.ndarray):
        return decoded
    return np.asarray(decoded, dtype=np.float32) / np.float32(255.0)


def check_image(
    path: str | os.PathLike[str],
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    listed: ImageFile | None = None,
) -> str | None:
    """Why ``path`` cannot be decoded, or ``None`` when it can: the quick check before a run.

    Cheaper than decoding: the header and the size guard always; then PNG files are read
    chunk by chunk with their checksums up to the end marker (no inflating), JPEG files are
    decoded at 1/8 scale (which still reads every compressed block), other formats decode
    their first frame. ``listed`` as in :func:`decode_image`.
    """
    try:
        with open_image(path, max_image_pixels, listed) as img:
            if img.format == "PNG":
                img.verify()
            else:
                if img.format in ("JPEG", "MPO"):
                    img.draft(None, (1, 1))
                img.load()
    except StimulusError as exc:
        return str(exc)
    except _DECODE_ERRORS as exc:
        return f"cannot read image {str(path)!r}: {_reason(exc)}"
    return None


def find_unreadable(
    paths: Sequence[str | os.PathLike[str]],
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    workers: int | None = None,
    listed: Sequence[ImageFile] | None = None,
) -> list[str]:
    """:func:`check_image` over ``paths`` (in ``workers`` threads): every problem, in order.

    ``listed`` (one per path) are the files as listed, to notice files changed since.
    """
    workers = max(1, workers or min(4, os.cpu_count() or 1))
    seen: Sequence[ImageFile | None] = listed if listed is not None else [None] * len(paths)

    def check(item: tuple[str | os.PathLike[str], ImageFile | None]) -> str | None:
        return check_image(item[0], max_image_pixels, item[1])

    items = list(zip(paths, seen, strict=True))
    if workers == 1 or len(items) < 2:
        results = [check(item) for item in items]
    else:
        with ThreadPoolExecutor(workers, "actpipe-check") as pool:
            results = list(pool.map(check, items))
    return [r for r in results if r is not None]


__all__ = [
    "ALPHA_MODES",
    "HIGH_DEPTH_MODES",
    "check_image",
    "decode_image",
    "find_unreadable",
    "load_rgb",
    "open_image",
]
