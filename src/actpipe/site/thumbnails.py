"""Thumbnails: one small image per stimulus, made once per stimulus set.

:func:`make_thumbnails` writes, into one folder (``results/thumbnails/{set}/`` in the
workflow), the thumbnail of the ``i``-th stimulus (stimulus-id order, as
:func:`actpipe.stimuli.folder.load_stimulus_folder` lists them) as
``{i // 1000}/{i}.{webp|jpg}`` (at most 1,000 files per folder), and ``manifest.json``:

.. code-block:: json

    {"kind": "thumbnails", "format_version": 1, "source": "results/stimuli/digits",
     "size": 64, "format": "webp", "quality": 80, "shard": 1000,
     "pattern": "{shard}/{index}.webp",
     "ids": ["digit_0014", ...], "width": [64, ...], "height": [64, ...],
     "labels": {"digit": ["4", ...]}, "unreadable": []}

Each image is scaled down (never up) so that its longer side is ``size`` pixels, keeping its
aspect ratio (Lanczos). Images with transparency keep it in WebP and are composited onto
white in JPEG; 16-bit and floating-point images are scaled to 8 bits as the extraction reads
them. No metadata is written, so the same images give the same bytes. Files are named by
index, never by stimulus id, so any id is safe. An image that cannot be decoded gets no file
and is listed under ``unreadable`` (the site shows a placeholder).

Thumbnails are small individual files rather than sprite sheets: a cluster's members are
scattered over the set, so a montage page of 48 members loads 48 files of a few hundred bytes
to a few kilobytes, where sprite sheets would load up to 48 whole sheets.
"""

from __future__ import annotations

import io
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import atomic_directory

if TYPE_CHECKING:
    from ..preprocess import InputRegion, Preprocess

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]
MANIFEST = "manifest.json"
SHARD = 1000
FORMAT_VERSION = 1
EXTENSIONS = {"webp": "webp", "jpeg": "jpg"}


@dataclass(frozen=True)
class ThumbnailOptions:
    """``size``: longer side in pixels; ``format``: ``webp`` or ``jpeg``; ``quality``: 1-100."""

    size: int = 64
    format: str = "webp"
    quality: int = 80

    def __post_init__(self) -> None:
        if self.format not in EXTENSIONS:
            raise ValueError(
                f"site.thumbnail_format {self.format!r}: choose one of {', '.join(EXTENSIONS)}"
            )
        if not 8 <= int(self.size) <= 1024:
            raise ValueError(f"site.thumbnail_size {self.size}: choose 8 to 1024 pixels")
        if not 1 <= int(self.quality) <= 100:
            raise ValueError(f"site.thumbnail_quality {self.quality}: choose 1 to 100")

    @classmethod
    def from_config(cls, block: dict[str, Any] | None) -> ThumbnailOptions:
        """Options from the config's ``site:`` block (``thumbnail_size`` etc.)."""
        block = block or {}
        return cls(
            size=int(block.get("thumbnail_size", cls.size)),
            format=str(block.get("thumbnail_format", cls.format)),
            quality=int(block.get("thumbnail_quality", cls.quality)),
        )


def thumbnail_name(index: int, extension: str) -> str:
    """The file of the ``index``-th stimulus, relative to the thumbnails folder."""
    return f"{index // SHARD}/{index}.{extension}"


def _displayable(img: Any, fmt: str) -> Any:
    """An 8-bit RGB or RGBA image (RGBA only for WebP) of any Pillow image."""
    import numpy as np
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(img, dtype=np.float64)
        if mode == "F":
            gray = np.clip(array, 0.0, 1.0)
        else:
            scale = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
            gray = np.clip(array / scale, 0.0, 1.0)
        img = Image.fromarray(np.round(gray * 255).astype(np.uint8), "L")
        mode = "L"
    has_alpha = mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    if fmt == "webp":
        return rgba
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def render_thumbnail(
    path: PathLike, options: ThumbnailOptions, max_image_pixels: int | None = None
) -> tuple[bytes, int, int]:
    """The encoded thumbnail of one image file, with its width and height.

    The image is opened as the extraction opens it (size guard ``max_image_pixels``, default
    the stimulus sets' default; first frame; EXIF orientation applied, so photos are upright).
    """
    from PIL import Image, ImageOps

    from ..imagefiles import DEFAULT_MAX_IMAGE_PIXELS
    from ..stimuli.decode import open_image

    limit = DEFAULT_MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels
    with open_image(path, limit) as img:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        img = _displayable(img, options.format)
    img.thumbnail((options.size, options.size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if options.format == "webp":
        img.save(buffer, "WEBP", quality=options.quality, method=4)
    else:
        img.save(buffer, "JPEG", quality=options.quality, optimize=True)
    return buffer.getvalue(), img.width, img.height


MAX_INPUT_SIDE = 448
"""Longest side of a rendered model input (:func:`render_model_input`); larger inputs are
scaled down, smaller ones kept at their size (the page scales them up)."""


def render_model_input(
    path: PathLike,
    preprocess: Preprocess,
    options: ThumbnailOptions | None = None,
    max_side: int = MAX_INPUT_SIDE,
    max_image_pixels: int | None = None,
) -> tuple[bytes, int, int, InputRegion]:
    """The model's input as a picture: the part of the image that the preprocessing's resize
    and crop (:func:`actpipe.preprocess.input_region`) turn into the input, with its padding,
    at the input's size (at most ``max_side`` on the longer side), before normalisation and
    jitter. Encoded like the thumbnails (``options``); returns the bytes, the picture's width
    and height, and the input's region of the image (its ``size`` is the input's).

    The image is decoded as the
    extraction decodes it (EXIF orientation, transparency onto the preprocessing's
    background, more than 8 bits scaled to 8); resampled with Lanczos, so the pixels may
    differ slightly from the model's (its own interpolation), never their place.
    """
    import numpy as np
    from PIL import Image

    from ..imagefiles import DEFAULT_MAX_IMAGE_PIXELS
    from ..preprocess import input_region
    from ..stimuli.decode import decode_image

    options = options or ThumbnailOptions()
    limit = DEFAULT_MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels
    decoded = decode_image(path, preprocess.background, limit)
    if isinstance(decoded, np.ndarray):
        decoded = Image.fromarray(np.round(np.clip(decoded, 0, 1) * 255).astype(np.uint8), "RGB")
    region = input_region(decoded.width, decoded.height, preprocess)
    width, height = region.size
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    left, top, right, bottom = region.box
    canvas = Image.new("RGB", (out_w, out_h), region.fill)
    # the part of the box inside the image, and where it lands in the output
    inner = (max(left, 0.0), max(top, 0.0), min(right, decoded.width), min(bottom, decoded.height))
    fx, fy = out_w / (right - left), out_h / (bottom - top)
    x0, y0 = round((inner[0] - left) * fx), round((inner[1] - top) * fy)
    x1, y1 = round((inner[2] - left) * fx), round((inner[3] - top) * fy)
    if x1 > x0 and y1 > y0:
        part = decoded.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS, box=inner)
        canvas.paste(part, (x0, y0))
    buffer = io.BytesIO()
    if options.format == "webp":
        canvas.save(buffer, "WEBP", quality=options.quality, method=4)
    else:
        canvas.save(buffer, "JPEG", quality=options.quality, optimize=True)
    return buffer.getvalue(), out_w, out_h, region


def make_thumbnails(
    stimulus_dir: PathLike,
    out_dir: PathLike,
    options: ThumbnailOptions | None = None,
    threads: int = 1,
    stimulus_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the thumbnails and ``manifest.json`` of a stimulus folder; return the manifest.

    ``out_dir`` is replaced as a whole when everything is written (see module docstring).
    ``stimulus_options`` is how the folder is read (the set's ``recursive``, ``extensions``,
    ``max_image_pixels``), so the thumbnails are those of the extracted stimuli.
    """
    from ..stimuli.folder import load_stimulus_folder

    options = options or ThumbnailOptions()
    stimuli = load_stimulus_folder(stimulus_dir, stimulus_options)
    limit = stimuli.options.max_image_pixels
    extension = EXTENSIONS[options.format]

    def one(index: int) -> tuple[int, bytes | None, int, int]:
        try:
            data, width, height = render_thumbnail(stimuli.paths[index], options, limit)
        except (OSError, ValueError, SyntaxError) as exc:
            log.warning("cannot read %s (no thumbnail): %s", stimuli.paths[index], exc)
            return index, None, 0, 0
        return index, data, width, height

    widths = [0] * len(stimuli)
    heights = [0] * len(stimuli)
    unreadable: list[int] = []
    with atomic_directory(out_dir) as tmp, ThreadPoolExecutor(max(1, int(threads))) as pool:
        for index, data, width, height in pool.map(one, range(len(stimuli))):
            if data is None:
                unreadable.append(index)
                continue
            target = tmp / thumbnail_name(index, extension)
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(data)
            widths[index], heights[index] = width, height
        manifest = {
            "kind": "thumbnails",
            "format_version": FORMAT_VERSION,
            "source": str(stimulus_dir),
            "size": options.size,
            "format": options.format,
            "quality": options.quality,
            "shard": SHARD,
            "pattern": "{shard}/{index}." + extension,
            "ids": stimuli.ids,
            "width": widths,
            "height": heights,
            "labels": stimuli.labels,
            "unreadable": unreadable,
        }
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, ensure_ascii=True, separators=(",", ":"))
            fh.write("\n")
    log.info(
        "%d thumbnails (%s, %d px) of %s in %s (%d unreadable)",
        len(stimuli) - len(unreadable),
        options.format,
        options.size,
        stimulus_dir,
        out_dir,
        len(unreadable),
    )
    return manifest


def read_manifest(folder: PathLike) -> dict[str, Any]:
    """The manifest of a thumbnails folder; an error says how to make it when missing."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: make the thumbnails of this stimulus set first "
            "(workflow rule make_thumbnails, or actpipe.site.make_thumbnails(stimulus_dir, "
            f"{str(folder)!r}))"
        )
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("kind") != "thumbnails":
        raise ValueError(f"{path}: not a thumbnails manifest (kind 'thumbnails' expected)")
    return manifest
