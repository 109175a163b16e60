"""The config block of one model, parsed: source, architecture, weights, layers, batching."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ModelError
from ..names import did_you_mean, entry_names, split_head
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, resolve_preprocess
from ..probes import METRICS, parse_probe
from .registry import SOURCE_NAMES

REDUCTIONS = ("flatten", "mean", "max", "cls")
AUTOCAST = ("none", "bf16", "fp16")
INPUT_LAYOUTS = ("nchw", "nhwc")
AUTO = "auto"

__all__ = [
    "AUTO",
    "AUTOCAST",
    "REDUCTIONS",
    "SOURCE_NAMES",
    "LayerSpec",
    "MetricSpec",
    "ModelError",
    "ModelSpec",
]


@dataclass(frozen=True)
class LayerSpec:
    """One layer to capture: the name it goes by, its reduction, and what to capture.

    ``name`` is the user's name of the layer (a config entry's ``as:``, else its ``name:``):
    files, outputs and readers use it (stored under :func:`actpipe.names.layer_key`).
    ``target`` is the module (or ONNX tensor) name when it differs from ``name``.

    The module may also be a transformer probe (``blocks.3.attn.z``, :mod:`actpipe.probes`),
    and a per-head probe may end in a head selector (``blocks.3.attn.z@h5``): the probe is
    stored with all its heads and the selector picks one head when the layer is read or
    clustered.
    """

    name: str
    reduce: str = "flatten"
    target: str = ""

    @property
    def module(self) -> str:
        """The module (or ONNX tensor) name to capture."""
        return self.target or self.name

    @property
    def stored_name(self) -> str:
        """The name of the dataset holding this layer (the name without a head selector)."""
        return split_head(self.name)[0]

    @property
    def probe_name(self) -> str:
        """The module (or probe) to capture, without a head selector."""
        return split_head(self.module)[0]


@dataclass(frozen=True)
class MetricSpec:
    """The attention metrics of a model block: which metrics, of which blocks.

    ``blocks`` is ``None`` for every block of the model.
    """

    names: tuple[str, ...] = ()
    blocks: tuple[int, ...] | None = None

    @classmethod
    def from_config(cls, value: Any, where: str) -> MetricSpec:
        """Parse ``metrics:``: a list of metric names (every block), ``all``, or a mapping
        ``{names: [...] | all, blocks: [...] | all}``."""
        if value is None:
            return cls()
        blocks: Any = "all"
        names = value
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"names", "blocks"})
            if unknown:
                raise ModelError(
                    f"{where}: metrics has unknown key(s) {unknown}; use names, blocks"
                )
            names = value.get("names", "all")
            blocks = value.get("blocks", "all")
        if names == "all":
            names = list(METRICS)
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise ModelError(f"{where}: metrics must be a list of names, 'all' or a mapping")
        for name in names:
            if name not in METRICS:
                raise ModelError(
                    f"{where}: unknown metric {name!r}; "
                    + did_you_mean(str(name), list(METRICS), "metrics")
                )
        if len(set(names)) != len(names):
            raise ModelError(f"{where}: a metric is listed twice in {list(names)}")
        if blocks == "all":
            block_tuple = None
        elif isinstance(blocks, (list, tuple)) and all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in blocks
        ):
            block_tuple = tuple(sorted(set(blocks)))
        else:
            raise ModelError(
                f"{where}: metrics.blocks must be 'all' or a list of block indices (0, 1, ...), "
                f"got {blocks!r}"
            )
        return cls(tuple(names), block_tuple)

    def __bool__(self) -> bool:
        return bool(self.names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "blocks": "all" if self.blocks is None else list(self.blocks),
        }


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
    input_layout: str = "nchw"
    metrics: MetricSpec = field(default_factory=MetricSpec)

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
        layers = [] if auto else parse_layers(raw_layers, default_reduce, where)
        metrics = MetricSpec.from_config(block.get("metrics"), where)
        if source == "onnx" and (metrics or any(parse_probe(x.probe_name) for x in layers)):
            raise ModelError(
                f"{where}: probes and metrics need a torch Vision Transformer (source timm or "
                "torchvision); an ONNX graph is run as it is, so list its tensor names instead"
            )
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
        input_layout = str(block.get("input_layout", "nchw"))
        if input_layout not in INPUT_LAYOUTS:
            raise ModelError(
                f"{where}: input_layout must be one of {INPUT_LAYOUTS}, got {input_layout!r}"
            )
        if input_layout != "nchw" and source != "onnx":
            raise ModelError(
                f"{where}: 'input_layout: {input_layout}' applies to onnx models only; torch "
                "models always take (batch, 3, height, width): remove the key"
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
            input_layout=input_layout,
            metrics=metrics,
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
            "layers": [describe_layer(layer) for layer in self.layers],
        }
        if self.weights_prefix:
            out["weights_prefix"] = self.weights_prefix
        if self.auto_layers:
            out["layers_auto"] = True
        if self.is_onnx:
            out["input_layout"] = self.input_layout
        if self.metrics:
            out["metrics"] = self.metrics.to_dict()
        return out


def describe_layer(layer: LayerSpec) -> dict[str, str]:
    """A layer as its config entry reads: ``{name, reduce}`` plus ``as`` when renamed."""
    if layer.target:
        return {"name": layer.target, "as": layer.name, "reduce": layer.reduce}
    return {"name": layer.name, "reduce": layer.reduce}


def parse_layers(entries: list[Any], default_reduce: str, where: str) -> list[LayerSpec]:
    """The ``layers:`` list of a model block: names or ``{name, as, reduce}`` mappings.

    Names and their uniqueness follow :func:`actpipe.names.entry_names`; probes, head
    selectors and their reductions :func:`check_layer_entry`. Entries stored together (one
    probe with several head selectors) must share their reduction.
    """
    try:
        names = entry_names(entries, where)
    except ValueError as exc:
        raise ModelError(str(exc)) from exc
    layers: list[LayerSpec] = []
    for entry, (name, module) in zip(entries, names, strict=True):
        reduce = entry.get("reduce", default_reduce) if isinstance(entry, dict) else default_reduce
        layer = LayerSpec(name, reduce, module if module != name else "")
        check_layer_entry(layer, where)
        layers.append(layer)
    stored: dict[str, LayerSpec] = {}
    for layer in layers:
        other = stored.setdefault(layer.stored_name, layer)
        if other.reduce != layer.reduce:
            raise ModelError(
                f"{where}: {other.name!r} and {layer.name!r} are stored together as "
                f"{layer.stored_name!r} and must have the same reduce (got "
                f"{other.reduce!r} and {layer.reduce!r})"
            )
    return layers


def check_layer_entry(layer: LayerSpec, where: str) -> None:
    """Raise :class:`ModelError` for a reduction, head selector or ``as:`` the layer cannot
    take."""
    probe = parse_probe(layer.probe_name)
    allowed = REDUCTIONS + (probe.extra_reductions if probe else ())
    if layer.reduce not in allowed:
        raise ModelError(
            f"{where}, layer {layer.name!r}: unknown reduce {layer.reduce!r}; choose one of "
            f"{allowed}" + ("" if probe else " ('cls_row' is for attention patterns)")
        )
    selected = split_head(layer.module)[1] is not None
    if selected and (probe is None or probe.kind != "head"):
        raise ModelError(
            f"{where}, layer {layer.name!r}: a head selector ('@h5') applies to per-head probes "
            "only (blocks.{i}.attn.pattern, .q, .k, .v, .z, .head_out)"
        )
    if selected and layer.target:
        raise ModelError(
            f"{where}, layer {layer.name!r}: 'as:' renames what is stored, and one head is not "
            f"stored alone; rename the probe ({{name: {layer.probe_name}, as: ...}}) or list "
            f"{layer.module!r} without 'as:'"
        )


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
