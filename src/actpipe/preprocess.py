"""Image preprocessing (presets, reference transforms, explicit settings) and seeded jitter.

An image becomes an input tensor in the order of the reference transforms (torchvision's
``Resize``/``CenterCrop``/``ToTensor``/``Normalize`` on the decoded PIL image, timm's
``create_transform`` for evaluation): decode (:mod:`actpipe.stimuli.decode`), resize and crop
the 8-bit image (:func:`resize_and_crop`), divide by 255 (:func:`image_tensor`), jitter each
replicate and normalise (:func:`expose`).
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .imagefiles import DEFAULT_MAX_IMAGE_PIXELS, ImageFile

if TYPE_CHECKING:
    import torch
    from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

PRESETS: dict[str, dict[str, Any]] = {
    "imagenet": {
        "size": 224,
        "resize": 256,
        "interpolation": "bilinear",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
    },
    "clip": {
        "size": 224,
        "resize": 224,
        "interpolation": "bicubic",
        "mean": CLIP_MEAN,
        "std": CLIP_STD,
    },
    "none": {
        "size": None,
        "resize": None,
        "interpolation": "bilinear",
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
    },
}


CROP_MODES = ("center", "squash", "border")
"""How the resized image becomes ``size`` x ``size`` (timm's ``crop_mode``): ``center``
resizes the shorter side to ``resize`` and crops the centre; ``squash`` resizes both sides to
``resize`` (aspect ratio not kept) and crops the centre; ``border`` resizes the longer side
to ``resize`` and pads (with the mean colour) or crops to ``size``."""


@dataclass(frozen=True)
class Preprocess:
    """How one image becomes one input tensor (the steps are in :func:`image_tensor`).

    ``resize`` is the side the image is resized to (the shorter side for ``crop_mode:
    center``), ``size`` the side of the centre crop, ``interpolation`` the resampling filter,
    ``mean`` / ``std`` the normalisation of [0, 1] values, ``background`` the RGB colour in
    [0, 1] transparent pixels are composited onto. ``preset`` names where the values came
    from (``imagenet``, ``auto:torchvision``, ``auto:timm``, ...), ``reference`` the
    reference transform they reproduce (``torchvision ResNet50_Weights.IMAGENET1K_V2``,
    ``timm vit_base_patch16_clip_224.openai``), if any.
    """

    size: int | None = 224
    resize: int | None = 256
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    background: tuple[float, float, float] = (0.5, 0.5, 0.5)
    crop_mode: str = "center"
    preset: str = "imagenet"
    reference: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Preprocess:
        """The preprocessing :meth:`to_dict` recorded (an activation file's ``preprocess``
        attribute); unknown keys are ignored, missing ones take the defaults."""
        names = {f.name for f in fields(cls)}
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in names}
        )


RECORD_ONLY = ("preset", "reference")
"""Fields of :class:`Preprocess` that record where values came from (not settable keys)."""


def resolve_preprocess(
    block: str | dict[str, Any] | None, defaults: dict[str, Any] | None = None
) -> Preprocess:
    """Build a :class:`Preprocess` from a config value: a preset name or a mapping.

    A mapping may name a ``preset`` and override any field (``size``, ``resize``,
    ``interpolation``, ``crop_mode``, ``mean``, ``std``, ``background``). The preset
    ``auto`` (also the meaning of a missing value) takes ``defaults`` - the model family's
    reference transform (:func:`actpipe.models.spec.reference_preprocess`), which may carry
    its own ``preset`` label and ``reference`` - when there are any, and ``imagenet``
    otherwise (recorded as ``auto:imagenet``).
    """
    if block is None:
        block = "auto"
    if isinstance(block, str):
        block = {"preset": block}
    block = dict(block)
    preset = block.pop("preset", "auto")
    reference = ""
    if preset == "auto":
        base = dict(PRESETS["imagenet"])
        if defaults:
            defaults = dict(defaults)
            preset = str(defaults.pop("preset", "auto:model"))
            reference = str(defaults.pop("reference", ""))
            base.update(defaults)
        else:
            preset = "auto:imagenet"
    elif preset in PRESETS:
        base = dict(PRESETS[preset])
    else:
        raise ValueError(
            f"unknown preprocessing preset {preset!r}; choose one of {['auto', *PRESETS]}"
        )
    known = {f.name for f in fields(Preprocess)} - set(RECORD_ONLY)
    unknown = set(block) - known
    if unknown:
        raise ValueError(f"unknown preprocessing key(s) {sorted(unknown)}; valid: {sorted(known)}")
    if block and reference:
        reference += " (with overrides)"
    values: dict[str, Any] = {**base, **block, "preset": preset, "reference": reference}
    for key in ("mean", "std", "background"):
        if key in values:
            values[key] = tuple(float(v) for v in values[key])
            if len(values[key]) != 3:
                raise ValueError(f"preprocessing {key!r} needs 3 values (R, G, B)")
    if any(s <= 0 for s in values["std"]):
        raise ValueError("preprocessing 'std' values must be positive")
    if values.get("resize") is None and values.get("size") is not None:
        values["resize"] = values["size"]
    values.setdefault("crop_mode", "center")
    if values["crop_mode"] not in CROP_MODES:
        raise ValueError(
            f"unknown preprocessing crop_mode {values['crop_mode']!r}; choose one of {CROP_MODES}"
        )
    if values["crop_mode"] != "center" and values.get("size") is None:
        raise ValueError(f"preprocessing crop_mode {values['crop_mode']!r} needs a 'size'")
    _interpolation(values["interpolation"])
    return Preprocess(**values)


@dataclass(frozen=True)
class Jitter:
    """Seeded small random transformations for replicate exposures.

    Each replicate of each image draws an integer translation in ``[-translate, translate]``
    pixels (x and y independently), a rotation in ``[-rotate, rotate]`` degrees and a scale
    in ``scale``. The draw depends only on ``(seed, stimulus id, replicate)``, so it does
    not change when images are added, removed, reordered or split into shards. Replicate 0
    is the untouched image when ``first_unjittered`` is true.
    """

    translate: int = 0
    rotate: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    first_unjittered: bool = True
    seed: int = 0
    fields_recorded: tuple[str, ...] = field(default=("dx_px", "dy_px", "rotation_deg", "scale"))

    @classmethod
    def from_config(cls, block: dict[str, Any] | None, seed: int) -> Jitter:
        block = dict(block or {})
        known = {"translate", "rotate", "scale", "first_unjittered"}
        unknown = set(block) - known
        if unknown:
            raise ValueError(f"unknown jitter key(s) {sorted(unknown)}; valid: {sorted(known)}")
        if "scale" in block:
            block["scale"] = tuple(float(s) for s in block["scale"])
        jitter = cls(seed=seed, **block)
        low, high = jitter.scale if len(jitter.scale) == 2 else (0.0, -1.0)
        if jitter.translate < 0 or jitter.rotate < 0 or not 0 < low <= high:
            raise ValueError(
                "jitter: translate (pixels) and rotate (degrees) must be >= 0 and scale a "
                f"[min, max] range of positive numbers with min <= max; got {block}"
            )
        return jitter

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scale"] = list(self.scale)
        out["fields_recorded"] = list(self.fields_recorded)
        return out

    def draw(self, stimulus_id: str, replicate: int) -> tuple[float, float, float, float]:
        """``(dx, dy, angle, scale)`` for one exposure."""
        if replicate == 0 and self.first_unjittered:
            return (0.0, 0.0, 0.0, 1.0)
        rng = np.random.default_rng([self.seed, zlib.crc32(stimulus_id.encode("utf-8")), replicate])
        dx, dy = rng.integers(-self.translate, self.translate, size=2, endpoint=True)
        angle = rng.uniform(-self.rotate, self.rotate) if self.rotate > 0 else 0.0
        low, high = self.scale
        scale = rng.uniform(low, high) if high > low else low
        return (float(dx), float(dy), float(angle), float(scale))


def _interpolation(name: str):
    from torchvision.transforms import InterpolationMode

    try:
        return InterpolationMode(name.lower())
    except ValueError as exc:
        valid = [m.value for m in InterpolationMode]
        raise ValueError(f"unknown interpolation {name!r}; choose one of {valid}") from exc


def resize_and_crop(
    img: Image.Image, pre: Preprocess, fill: float | tuple[int, ...] = 0
) -> Image.Image:
    """Resize and crop a PIL image as the reference transforms do (torchvision's functional
    ``resize`` and ``center_crop`` on the PIL image, i.e. Pillow's own resampling).

    ``center``: ``Resize(resize)`` (shorter side to ``resize``, the longer one to
    ``int(resize * long / short)``) then ``CenterCrop(size)`` (padding with 0 where the image
    is smaller). ``squash``: ``Resize((resize, resize))`` then ``CenterCrop(size)``.
    ``border`` (timm's): the longer side to ``resize`` (both sides ``round(side / ratio)``),
    then padded with ``fill`` to at least ``size`` and centre-cropped. Works on 8-bit RGB and
    on float (mode ``F``) images.
    """
    import torchvision.transforms.functional as TF

    interpolation = _interpolation(pre.interpolation)
    if pre.crop_mode == "squash":
        img = TF.resize(img, [pre.resize, pre.resize], interpolation)
    elif pre.crop_mode == "border":
        width, height = img.size
        ratio = max(height / pre.resize, width / pre.resize)
        img = TF.resize(img, [round(height / ratio), round(width / ratio)], interpolation)
        width, height = img.size
        if pre.size > width or pre.size > height:
            pad_w, pad_h = max(pre.size - width, 0), max(pre.size - height, 0)
            padding = [pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2]
            img = TF.pad(img, padding, fill=fill)
    elif pre.resize is not None:
        img = TF.resize(img, [pre.resize], interpolation)
    if pre.size is not None:
        img = TF.center_crop(img, [pre.size, pre.size])
    return img


@dataclass(frozen=True)
class InputRegion:
    """Where a model's input lies on the decoded image (:func:`input_region`).

    ``box``: ``(left, top, right, bottom)`` in pixel coordinates of the decoded image (edges,
    not centres; may reach beyond the image where the input is padded); ``size``: the input's
    ``(width, height)`` in pixels; ``fill``: the 8-bit RGB colour of padding.
    """

    box: tuple[float, float, float, float]
    size: tuple[int, int]
    fill: tuple[int, int, int]


def input_region(width: int, height: int, pre: Preprocess) -> InputRegion:
    """The part of a ``width`` x ``height`` image that :func:`resize_and_crop` turns into the
    model's input, computed from the same sizes and roundings (no image needed, no torch).

    Input pixel ``(x, y)`` covers ``[left + x * w, left + (x + 1) * w]`` horizontally with
    ``w = (right - left) / size[0]`` (likewise vertically), because Pillow's resampling maps
    pixel edges linearly; so the input's patch grid can be laid over the image.
    """
    if pre.crop_mode == "squash":
        rw, rh = pre.resize, pre.resize
    elif pre.crop_mode == "border":
        ratio = max(height / pre.resize, width / pre.resize)
        rw, rh = round(width / ratio), round(height / ratio)
    elif pre.resize is not None:  # torchvision's Resize(int): the shorter side to ``resize``
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(pre.resize * long / short)
        rw, rh = (pre.resize, new_long) if width <= height else (new_long, pre.resize)
    else:
        rw, rh = width, height
    assert rw is not None and rh is not None
    fill = (0, 0, 0)
    left, top, cw, ch = 0, 0, rw, rh  # the canvas, in resized pixels
    if pre.crop_mode == "border" and pre.size is not None and (pre.size > rw or pre.size > rh):
        pad_w, pad_h = max(pre.size - rw, 0), max(pre.size - rh, 0)
        left, top = -(pad_w // 2), -(pad_h // 2)
        cw, ch = rw + pad_w, rh + pad_h
        fill = tuple(round(255 * m) for m in pre.mean)  # type: ignore[assignment]
    if pre.size is not None:  # torchvision's CenterCrop: pad with 0 if smaller, then crop
        size = pre.size
        if size > cw or size > ch:
            pad_l = (size - cw) // 2 if size > cw else 0
            pad_t = (size - ch) // 2 if size > ch else 0
            pad_r = (size - cw + 1) // 2 if size > cw else 0
            pad_b = (size - ch + 1) // 2 if size > ch else 0
            left, top = left - pad_l, top - pad_t
            cw, ch = cw + pad_l + pad_r, ch + pad_t + pad_b
        if (cw, ch) != (size, size):
            left += int(round((cw - size) / 2.0))
            top += int(round((ch - size) / 2.0))
        cw, ch = size, size
    sx, sy = width / rw, height / rh
    box = (left * sx, top * sy, (left + cw) * sx, (top + ch) * sy)
    return InputRegion(box, (cw, ch), fill)


def image_tensor(decoded: Image.Image | np.ndarray, pre: Preprocess) -> torch.Tensor:
    """A decoded image (:func:`actpipe.stimuli.decode_image`) as a float tensor ``(3, H, W)``
    in [0, 1], resized and cropped.

    8-bit RGB images (a PIL image) are resized and cropped as 8-bit images
    (:func:`resize_and_crop`), then divided by 255 (torchvision's ``ToTensor``), so the
    result equals the model family's reference transform before its ``Normalize``. Images
    with more than 8 bits per channel (a float array) are resized and cropped channel by
    channel as float images with the same filters (no rounding to 8 bits), then clipped to
    [0, 1].
    """
    import torch
    from PIL import Image

    if not isinstance(decoded, np.ndarray):
        fill = tuple(round(255 * m) for m in pre.mean)
        pixels = np.asarray(resize_and_crop(decoded, pre, fill)).transpose(2, 0, 1)
        # numpy's float32 division equals torch's div(255) (both correctly rounded) and
        # does not compete with the forward pass for torch's thread pool.
        image = pixels.astype(np.float32, order="C")
        image /= np.float32(255)
        return torch.from_numpy(image)
    channels = []
    for c in range(3):
        plane = Image.fromarray(np.ascontiguousarray(decoded[:, :, c], dtype=np.float32), "F")
        plane = resize_and_crop(plane, pre, round(255 * pre.mean[c]) / 255)
        channels.append(torch.from_numpy(np.asarray(plane, dtype=np.float32).copy()))
    return torch.stack(channels).clamp_(0.0, 1.0)


def prepare_image(
    path: str | Path,
    pre: Preprocess,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    listed: ImageFile | None = None,
) -> torch.Tensor:
    """Decode, resize and centre-crop one image: float tensor ``(3, size, size)`` in [0, 1].

    :func:`actpipe.stimuli.decode_image` then :func:`image_tensor`; ``max_image_pixels`` and
    ``listed`` are passed to the decoder.
    """
    from .stimuli import decode_image

    return image_tensor(decode_image(path, pre.background, max_image_pixels, listed), pre)


def expose(
    image: torch.Tensor, stimulus_id: str, n_replicates: int, jitter: Jitter, pre: Preprocess
) -> tuple[torch.Tensor, np.ndarray]:
    """The ``n_replicates`` normalised exposures of one prepared image and their jitter.

    Returns ``(tensor of shape (n_replicates, 3, H, W), float64 array (n_replicates, 4))``.
    """
    import torch
    import torchvision.transforms.v2.functional as F

    mean = torch.tensor(pre.mean, dtype=image.dtype).view(3, 1, 1)
    std = torch.tensor(pre.std, dtype=image.dtype).view(3, 1, 1)
    exposures = []
    record = np.zeros((n_replicates, 4), dtype=np.float64)
    for r in range(n_replicates):
        dx, dy, angle, scale = jitter.draw(stimulus_id, r)
        record[r] = (dx, dy, angle, scale)
        view = image
        if (dx, dy, angle, scale) != (0.0, 0.0, 0.0, 1.0):
            view = F.affine(
                image,
                angle=angle,
                translate=[int(dx), int(dy)],
                scale=scale,
                shear=[0.0, 0.0],
                interpolation=_interpolation("bilinear"),
                fill=list(pre.background),
            )
        exposures.append((view - mean) / std)
    return torch.stack(exposures), record


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "CROP_MODES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRESETS",
    "InputRegion",
    "Jitter",
    "Preprocess",
    "expose",
    "image_tensor",
    "input_region",
    "prepare_image",
    "resize_and_crop",
    "resolve_preprocess",
]
