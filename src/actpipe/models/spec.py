"""The config block of one model, parsed: source, architecture, weights, layers, batching."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ModelError
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, resolve_preprocess
from .registry import SOURCE_NAMES

REDUCTIONS = ("flatten", "mean", "max", "cls")
AUTOCAST = ("none", "bf16", "fp16")
AUTO = "auto"

__all__ = ["AUTO", "AUTOCAST", "REDUCTIONS", "SOURCE_NAMES", "LayerSpec", "ModelError", "ModelSpec"]


@dataclass(frozen=True)
class LayerSpec:
    """One layer to capture: the module (or ONNX tensor) name and its reduction."""

    name: str
    reduce: str = "flatten"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build one model of the panel and extract its layers.

    ``layers`` is empty when the block says ``layers: auto`` (``auto_layers`` is true);
    :func:`actpipe.models.layers.resolve_layer_names` then picks the family's default list.
    """

    name: str
    source: str
    arch: str
    layers: tuple[LayerSpec, ...]
    weights: str = "random"
    seed: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)
    preprocess: Preprocess = field(default_factory=Preprocess)
    batch_size: int = 32
    strict: bool = True
    weights_prefix: str = ""
    auto_layers: bool = False
    default_reduce: str = "flatten"
    autocast: str | None = None
    device: str | None = None
    channels_last: bool | None = None

    @classmethod
    def from_config(cls, name: str, block: dict[str, Any]) -> ModelSpec:
        """Parse a ``models:`` entry. Layer entries are names or ``{name, reduce}`` mappings.

        ``layers: auto`` defers the choice to the family default. For ``source: onnx`` the
        architecture is the ``path`` of the .onnx file (``name`` may repeat it).
        """
        where = f"model {name!r}"
        source = block.get("source")
        if source not in SOURCE_NAMES:
            raise ModelError(
                f"{where}: unknown source {source!r}; choose one of {list(SOURCE_NAMES)}"
            )
        if source == "onnx":
            arch = block.get("path") or block.get("name")
            if not arch:
                raise ModelError(f"{where}: an onnx model needs 'path: /path/to/model.onnx'")
        else:
            arch = block.get("name")
            if not arch:
                raise ModelError(f"{where}: 'name' (the architecture) is missing")
        default_reduce = block.get("reduce", "flatten")
        if default_reduce not in REDUCTIONS:
            raise ModelError(
                f"{where}: unknown reduce {default_reduce!r}; choose one of {REDUCTIONS}"
            )
        raw_layers = block.get("layers", [])
        auto = raw_layers == AUTO
        layers: list[LayerSpec] = []
        for entry in [] if auto else raw_layers:
            if isinstance(entry, str):
                layers.append(LayerSpec(entry, default_reduce))
            else:
                layers.append(LayerSpec(entry["name"], entry.get("reduce", default_reduce)))
        for layer in layers:
            if layer.reduce not in REDUCTIONS:
                raise ModelError(
                    f"{where}, layer {layer.name!r}: unknown reduce {layer.reduce!r}; "
                    f"choose one of {REDUCTIONS}"
                )
        names = [layer.name for layer in layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ModelError(f"{where}: layer(s) listed twice: {duplicates}")
        if not layers and not auto:
            raise ModelError(
                f"{where}: 'layers' is empty; list at least one layer or write 'layers: auto'"
            )
        autocast = block.get("autocast")
        if autocast is not None and autocast not in AUTOCAST:
            raise ModelError(f"{where}: autocast must be one of {AUTOCAST}, got {autocast!r}")
        kwargs = dict(block.get("kwargs", {}) or {})
        try:
            preprocess = resolve_preprocess(
                block.get("preprocess", AUTO), reference_preprocess(source, arch, kwargs)
            )
        except ValueError as exc:
            raise ModelError(f"{where}: {exc}") from exc
        weights = str(block.get("weights", "random"))
        if source == "onnx" and weights not in ("random", "file"):
            raise ModelError(
                f"{where}: an onnx model carries its weights in the .onnx file; remove "
                f"'weights: {weights}' from its block"
            )
        return cls(
            name=name,
            source=source,
            arch=str(arch),
            layers=tuple(layers),
            weights="file" if source == "onnx" else weights,
            seed=int(block.get("seed", 0)),
            kwargs=kwargs,
            preprocess=preprocess,
            batch_size=int(block.get("batch_size", 32)),
            strict=bool(block.get("strict", True)),
            weights_prefix=str(block.get("weights_prefix", "")),
            auto_layers=auto,
            default_reduce=default_reduce,
            autocast=autocast,
            device=block.get("device"),
            channels_last=block.get("channels_last"),
        )

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    @property
    def is_onnx(self) -> bool:
        return self.source == "onnx"

    def with_layer_names(self, names: list[str]) -> ModelSpec:
        """The same spec with ``names`` as its layers (default reduction), e.g. after auto."""
        return replace(self, layers=tuple(LayerSpec(n, self.default_reduce) for n in names))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for provenance attributes."""
        out = {
            "name": self.name,
            "source": self.source,
            "arch": self.arch,
            "weights": self.weights,
            "seed": self.seed,
            "kwargs": self.kwargs,
            "batch_size": self.batch_size,
            "strict": self.strict,
            "layers": [{"name": layer.name, "reduce": layer.reduce} for layer in self.layers],
        }
        if self.weights_prefix:
            out["weights_prefix"] = self.weights_prefix
        if self.auto_layers:
            out["layers_auto"] = True
        return out


def reference_preprocess(source: str, arch: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """What ``preprocess: auto`` takes for a model: its family's reference transform.

    torchvision: the transforms of the architecture's ``DEFAULT`` weights
    (:func:`torchvision_defaults`); timm: the pretrained config as timm's
    ``resolve_data_config`` + ``create_transform`` read it (:func:`timm_defaults`); every
    other source (and a name neither knows): ``None``, i.e. the ``imagenet`` preset.
    """
    if source == "torchvision":
        return torchvision_defaults(arch)
    if source == "timm":
        return timm_defaults(source, arch, kwargs)
    return None


def torchvision_defaults(arch: str) -> dict[str, Any] | None:
    """Preprocessing of a torchvision architecture's ``DEFAULT`` weights (offline: the
    transform's parameters ship with torchvision): resize size, crop size, interpolation,
    mean and std of its ``ImageClassification`` transform. ``None`` for architectures without
    weights or whose weights transform is not an image classification one."""
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(arch).DEFAULT
    except Exception:  # unknown names are reported by the registry, with close names
        return None
    transform = weights.transforms()
    needed = ("crop_size", "resize_size", "interpolation", "mean", "std")
    if type(transform).__name__ != "ImageClassification" or not all(
        hasattr(transform, name) for name in needed
    ):
        return None
    return {
        "size": int(transform.crop_size[0]),
        "resize": int(transform.resize_size[0]),
        "interpolation": transform.interpolation.value,
        "mean": tuple(float(v) for v in transform.mean),
        "std": tuple(float(v) for v in transform.std),
        "crop_mode": "center",
        "preset": "auto:torchvision",
        "reference": f"torchvision {weights}",
    }


def timm_defaults(source: str, arch: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """Preprocessing of a timm architecture's own pretrained config (``None`` if it has none).

    As timm's ``resolve_data_config`` and evaluation ``create_transform`` read the config:
    ``size`` is its input size (or ``kwargs['img_size']``), ``resize`` is
    ``floor(size / crop_pct)`` (``crop_pct`` 0.875 when the config has none), the crop mode
    (``center`` when none), the interpolation (``bicubic`` when none), mean and std (ImageNet's
    when none).
    """
    if source != "timm":
        return None
    import math

    import timm

    try:
        cfg = timm.get_pretrained_cfg(arch)
    except Exception:  # unknown names are reported by the registry, with close names
        return None
    if cfg is None:
        return None
    size = int(cfg.input_size[-1])
    img_size = kwargs.get("img_size")
    if isinstance(img_size, int):
        size = img_size
    elif isinstance(img_size, (list, tuple)) and img_size:
        size = int(img_size[-1])
    crop_pct = float(cfg.crop_pct or 0.875)
    tag = arch if "." in arch else f"{arch}.{cfg.tag}" if cfg.tag else arch
    return {
        "size": size,
        "resize": math.floor(size / crop_pct),
        "interpolation": str(cfg.interpolation or "bicubic"),
        "mean": tuple(float(v) for v in (cfg.mean or IMAGENET_MEAN)),
        "std": tuple(float(v) for v in (cfg.std or IMAGENET_STD)),
        "crop_mode": str(cfg.crop_mode or "center"),
        "preset": "auto:timm",
        "reference": f"timm {tag}",
    }
