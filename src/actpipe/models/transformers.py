"""Where the probes of a Vision Transformer are: its family, blocks, heads and prefix tokens.

Two families are supported, recognised by the types of their blocks and attention modules:

- **timm**: ``timm.models.vision_transformer.Block`` blocks under ``model.blocks`` with
  ``timm.layers.Attention`` attention (ViT, DeiT and distilled DeiT, the ``vit_*_clip_*``
  image towers, DINOv2 and models with register tokens, LayerScale, q/k norm), fused
  attention on or off;
- **torchvision**: ``VisionTransformer`` with ``EncoderBlock`` blocks under
  ``encoder.layers`` and ``nn.MultiheadAttention`` attention (``vit_b_16``, ``vit_l_32``, ...).

Anything else asked for probes is a :class:`~actpipe.errors.ModelError` naming these families
and the module found. Only module types and sizes are read, so a model built on the meta
device (:func:`actpipe.models.registry.build_skeleton`) is checked without running it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import LayerError, ModelError
from ..probes import HEAD_SITES, METRICS, RESIDUAL_SITES, Probe, metric_probe, parse_probe
from .spec import LayerSpec, MetricSpec

SUPPORTED_FAMILIES = (
    "timm Vision Transformers (blocks of timm.models.vision_transformer.Block with "
    "timm.layers.Attention: ViT, DeiT, vit_*_clip_* towers, DINOv2/register models, LayerScale, "
    "qk_norm) and torchvision VisionTransformer (EncoderBlock with nn.MultiheadAttention)"
)
"""How error messages name the supported families."""


@dataclass(frozen=True)
class TransformerLayout:
    """A supported Vision Transformer as the probes see it.

    ``blocks`` are the module names of the blocks in order (``blocks.{i}`` of the probe names
    is ``blocks[i]``); ``prefix_tokens`` is the number of tokens before the patch tokens
    (class, distillation and register tokens); ``class_token`` whether token 0 is a class
    token; ``patch_size`` is ``(height, width)`` in input pixels.
    """

    family: str
    blocks: tuple[str, ...]
    num_heads: int
    head_dim: int
    embed_dim: int
    prefix_tokens: int
    class_token: bool
    patch_size: tuple[int, int]
    dynamic_pad: bool = False

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch rows and columns of an input of ``height`` x ``width`` pixels."""
        ph, pw = self.patch_size
        if self.dynamic_pad:
            return math.ceil(height / ph), math.ceil(width / pw)
        return height // ph, width // pw

    def block(self, model: nn.Module, index: int) -> nn.Module:
        return model.get_submodule(self.blocks[index])


def _pair(value: object) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[-1])
    return int(value), int(value)  # type: ignore[call-overload]


def _timm_layout(model: nn.Module, where: str) -> TransformerLayout | None:
    try:
        from timm.layers import Attention
        from timm.models.vision_transformer import Block
    except ImportError:  # pragma: no cover - timm is a dependency
        return None
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential) or not len(blocks):
        return None
    for i, block in enumerate(blocks):
        attn = getattr(block, "attn", None)
        if type(block) is not Block or type(attn) is not Attention:
            raise ModelError(
                f"{where}: probes support {SUPPORTED_FAMILIES}; block blocks.{i} is "
                f"{type(block).__module__}.{type(block).__name__} with attention "
                f"{type(attn).__module__}.{type(attn).__name__}"
            )
    first = blocks[0].attn
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is None or not hasattr(patch_embed, "patch_size"):
        raise ModelError(
            f"{where}: probes support {SUPPORTED_FAMILIES}; {type(model).__name__} has timm "
            "blocks but no patch embedding (model.patch_embed.patch_size)"
        )
    return TransformerLayout(
        family="timm",
        blocks=tuple(f"blocks.{i}" for i in range(len(blocks))),
        num_heads=int(first.num_heads),
        head_dim=int(first.head_dim),
        embed_dim=int(first.qkv.in_features),
        prefix_tokens=int(getattr(model, "num_prefix_tokens", 0)),
        class_token=getattr(model, "cls_token", None) is not None,
        patch_size=_pair(patch_embed.patch_size),
        dynamic_pad=bool(getattr(patch_embed, "dynamic_img_pad", False)),
    )


def _torchvision_layout(model: nn.Module, where: str) -> TransformerLayout | None:
    try:
        from torchvision.models.vision_transformer import EncoderBlock, VisionTransformer
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return None
    if not isinstance(model, VisionTransformer):
        return None
    names = []
    for name, block in model.encoder.layers.named_children():
        attn = getattr(block, "self_attention", None)
        if type(block) is not EncoderBlock or type(attn) is not nn.MultiheadAttention:
            raise ModelError(
                f"{where}: probes support {SUPPORTED_FAMILIES}; block encoder.layers.{name} is "
                f"{type(block).__name__} with attention {type(attn).__name__}"
            )
        if not attn.batch_first or not attn._qkv_same_embed_dim or attn.bias_k is not None:
            raise ModelError(
                f"{where}: encoder.layers.{name}.self_attention is an nn.MultiheadAttention "
                "configured unlike torchvision's ViT (batch_first, one in-projection, no added "
                "key/value bias); probes support only the standard configuration"
            )
        names.append(f"encoder.layers.{name}")
    if not names:
        return None
    first = model.encoder.layers[0].self_attention
    return TransformerLayout(
        family="torchvision",
        blocks=tuple(names),
        num_heads=int(first.num_heads),
        head_dim=int(first.head_dim),
        embed_dim=int(first.embed_dim),
        prefix_tokens=1,
        class_token=True,
        patch_size=_pair(model.patch_size),
    )


def transformer_layout(model: nn.Module, model_name: str) -> TransformerLayout:
    """The :class:`TransformerLayout` of ``model``; a :class:`ModelError` if its family is not
    supported (naming the supported families and what was found)."""
    where = f"model {model_name!r}"
    for find in (_timm_layout, _torchvision_layout):
        layout = find(model, where)
        if layout is not None:
            return layout
    kinds = sorted(
        {
            type(m).__name__
            for m in model.modules()
            if "attention" in type(m).__name__.lower() or "block" in type(m).__name__.lower()
        }
    )
    found = f" (its attention/block modules: {', '.join(kinds[:6])})" if kinds else ""
    raise ModelError(
        f"{where}: probes and attention metrics need a Vision Transformer; supported are "
        f"{SUPPORTED_FAMILIES}. Found {type(model).__module__}.{type(model).__name__}{found}; "
        "remove the probes (blocks.{i}.resid_*, blocks.{i}.attn.*) and metrics from this model"
    )


def available_probes(model: nn.Module) -> dict[str, Any] | None:
    """What a supported Vision Transformer offers to probe (``None`` for any other model):
    its family, block count, heads, prefix tokens and the probe sites and metrics of every
    block, as ``actpipe layers`` shows them."""
    try:
        layout = transformer_layout(model, "")
    except ModelError:
        return None
    return {
        "family": layout.family,
        "blocks": len(layout.blocks),
        "num_heads": layout.num_heads,
        "prefix_tokens": layout.prefix_tokens,
        "class_token": layout.class_token,
        "sites": [*RESIDUAL_SITES, *HEAD_SITES],
        "metrics": list(METRICS),
    }


@dataclass
class ProbeOutput:
    """One stored probe output: dataset name, probe and reduction."""

    name: str
    probe: Probe
    reduce: str


def probe_outputs(layers: Sequence[LayerSpec]) -> list[ProbeOutput]:
    """The stored probe outputs of ``layers`` (plain layers left out, head selectors dropped,
    each stored name once; a probe renamed with ``as:`` is stored under its short name)."""
    out: dict[str, ProbeOutput] = {}
    for layer in layers:
        probe = parse_probe(layer.probe_name)
        if probe is not None and layer.stored_name not in out:
            out[layer.stored_name] = ProbeOutput(layer.stored_name, probe, layer.reduce)
    return list(out.values())


def metric_outputs(metrics: MetricSpec, n_blocks: int, model_name: str) -> list[ProbeOutput]:
    """The stored metric outputs of a model's ``metrics:`` block, block by block."""
    blocks = range(n_blocks) if metrics.blocks is None else metrics.blocks
    outs = []
    for block in blocks:
        if block >= n_blocks:
            raise LayerError(
                f"model {model_name!r}: metrics.blocks lists block {block}, but the model has "
                f"{n_blocks} blocks (0 to {n_blocks - 1})"
            )
        for metric in metrics.names:
            probe = metric_probe(block, metric)
            outs.append(ProbeOutput(probe.name, probe, "none"))
    return outs


def check_transformer_probes(
    model: nn.Module, layers: Sequence[LayerSpec], metrics: MetricSpec, model_name: str
) -> TransformerLayout | None:
    """Check the probes and metrics of a model block against the model: a supported family,
    blocks that exist, a class token for ``cls``/``cls_row``. No forward pass (a meta-device
    model works). Returns the layout, or ``None`` when nothing is probed."""
    outputs = probe_outputs(layers)
    if not outputs and not metrics:
        return None
    layout = transformer_layout(model, model_name)
    n = len(layout.blocks)
    for out in outputs:
        if out.probe.block >= n:
            raise LayerError(
                f"model {model_name!r}: probe {out.name!r} names block {out.probe.block}, but "
                f"the model has {n} blocks (blocks.0 to blocks.{n - 1})"
            )
    metric_outputs(metrics, n, model_name)
    if not layout.class_token:
        for out in outputs:
            if out.reduce in ("cls", "cls_row"):
                raise LayerError(
                    f"model {model_name!r}, layer {out.name!r}: reduce {out.reduce!r} takes the "
                    "class token, and this model has none; use 'mean', 'max' or 'flatten'"
                )
    return layout
