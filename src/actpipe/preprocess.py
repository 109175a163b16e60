"""Image preprocessing (presets and explicit settings) and seeded replicate jitter."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

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


@dataclass(frozen=True)
class Preprocess:
    """How one image becomes one input tensor.

    The image is decoded to RGB in [0, 1] (alpha composited onto ``background``), its shorter
    side resized to ``resize`` (if set), centre-cropped to ``size`` x ``size`` (if set),
    jittered per replicate, then normalised with ``mean`` / ``std``.
    """

    size: int | None = 224
    resize: int | None = 256
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    background: tuple[float, float, float] = (0.5, 0.5, 0.5)
    preset: str = "imagenet"

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def resolve_preprocess(
    block: str | dict[str, Any] | None, defaults: dict[str, Any] | None = None
) -> Preprocess:
    """Build a :class:`Preprocess` from a config value: a preset name or a mapping.

    A mapping may name a ``preset`` and override any field (``size``, ``resize``,
    ``interpolation``, ``mean``, ``std``, ``background``). The preset ``auto`` (also the
    meaning of a missing value) takes ``defaults`` - the model's own pretrained
    configuration, e.g. a timm model's - when there are any, and ``imagenet`` otherwise;
    the preset recorded is then ``auto:model`` or ``auto:imagenet``.
    """
    if block is None:
        block = "auto"
    if isinstance(block, str):
        block = {"preset": block}
    block = dict(block)
    preset = block.pop("preset", "auto")
    if preset == "auto":
        base = dict(PRESETS["imagenet"])
        if defaults:
            base.update(defaults)
            preset = "auto:model"
        else:
            preset = "auto:imagenet"
    elif preset in PRESETS:
        base = dict(PRESETS[preset])
    else:
        raise ValueError(
            f"unknown preprocessing preset {preset!r}; choose one of {['auto', *PRESETS]}"
        )
    known = {f.name for f in fields(Preprocess)} - {"preset"}
    unknown = set(block) - known
    if unknown:
        raise ValueError(f"unknown preprocessing key(s) {sorted(unknown)}; valid: {sorted(known)}")
    values: dict[str, Any] = {**base, **block, "preset": preset}
    for key in ("mean", "std", "background"):
        if key in values:
            values[key] = tuple(float(v) for v in values[key])
            if len(values[key]) != 3:
                raise ValueError(f"preprocessing {key!r} needs 3 values (R, G, B)")
    if any(s <= 0 for s in values["std"]):
        raise ValueError("preprocessing 'std' values must be positive")
    if values.get("resize") is None and values.get("size") is not None:
        values["resize"] = values["size"]
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


def prepare_image(path: str | Path, pre: Preprocess) -> torch.Tensor:
    """Decode, resize and centre-crop one image: float tensor ``(3, size, size)`` in [0, 1]."""
    import torchvision.transforms.v2.functional as F

    from .stimuli import load_rgb

    rgb = load_rgb(path, pre.background)
    image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
    if pre.resize is not None:
        image = F.resize(
            image, [pre.resize], interpolation=_interpolation(pre.interpolation), antialias=True
        )
    if pre.size is not None:
        image = F.center_crop(image, [pre.size, pre.size])
    return image.clamp_(0.0, 1.0)


def expose(
    image: torch.Tensor, stimulus_id: str, n_replicates: int, jitter: Jitter, pre: Preprocess
) -> tuple[torch.Tensor, np.ndarray]:
    """The ``n_replicates`` normalised exposures of one prepared image and their jitter.

    Returns ``(tensor of shape (n_replicates, 3, H, W), float64 array (n_replicates, 4))``.
    """
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
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRESETS",
    "Jitter",
    "Preprocess",
    "expose",
    "prepare_image",
    "resolve_preprocess",
]
