"""Small Vision Transformers of every supported family, and reference computations in numpy.

The reference metrics are written from their definitions (docs/transformers.md) with numpy
only, independently of :mod:`actpipe.extraction.attention_metrics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FAMILIES: dict[str, dict[str, Any]] = {
    # name -> timm architecture, constructor kwargs, input size
    "vit": {"arch": "vit_tiny_patch16_224", "kwargs": {"img_size": 48, "depth": 3}, "size": 48},
    "deit_distilled": {
        "arch": "deit_tiny_distilled_patch16_224",
        "kwargs": {"img_size": 48, "depth": 3},
        "size": 48,
    },
    "clip": {
        "arch": "vit_base_patch16_clip_224",
        "kwargs": {"img_size": 32, "depth": 2},
        "size": 32,
    },
    "dinov2_registers_layerscale": {
        "arch": "vit_small_patch14_reg4_dinov2",
        "kwargs": {"img_size": 42, "depth": 2, "drop_path_rate": 0.2},
        "size": 42,
    },
    "qk_norm": {
        "arch": "vit_tiny_patch16_224",
        "kwargs": {"img_size": 48, "depth": 2, "qk_norm": True},
        "size": 48,
    },
    "registers_no_class_token": {
        "arch": "vit_tiny_patch16_224",
        "kwargs": {
            "img_size": 48,
            "depth": 2,
            "class_token": False,
            "reg_tokens": 2,
            "global_pool": "avg",
        },
        "size": 48,
    },
}
"""timm models of the supported family, small enough for tests."""


def sharpen(model: nn.Module, seed: int = 0) -> nn.Module:
    """Perturb every parameter (non-zero biases, LayerScale not 1e-5) and scale the attention
    in-projections up, so attention patterns are far from uniform."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.05)
            if name.endswith(("qkv.weight", "in_proj_weight")):
                param.mul_(2.0)
            if name.endswith("gamma"):
                param.copy_(torch.rand(param.shape, generator=gen) + 0.5)
    return model.eval()


def timm_model(family: str, fused: bool = True, seed: int = 0) -> nn.Module:
    import timm

    entry = FAMILIES[family]
    torch.manual_seed(seed)
    model = timm.create_model(entry["arch"], pretrained=False, **entry["kwargs"])
    sharpen(model, seed)
    set_fused(model, fused)
    return model


def set_fused(model: nn.Module, fused: bool) -> None:
    """Switch timm's fused attention on or off in every attention module of ``model``."""
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = fused


def small_torchvision_vit(image_size: int = 32, seed: int = 0) -> nn.Module:
    """torchvision's VisionTransformer with 2 blocks of 4 heads, sharpened."""
    from torchvision.models import VisionTransformer

    torch.manual_seed(seed)
    model = VisionTransformer(
        image_size=image_size, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=96
    )
    return sharpen(model, seed)


def save_weights(model: nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


# --------------------------------------------------------------------------- references


def ref_entropy(pattern: np.ndarray) -> np.ndarray:
    """(..., q, k) -> (...): mean over queries of -sum p ln p."""
    p = pattern.astype(np.float64)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(-1).mean(-1)


def ref_distance(
    pattern: np.ndarray, prefix: int, grid: tuple[int, int], patch: tuple[int, int]
) -> np.ndarray:
    """Mean over patch queries of the attention-weighted pixel distance to patch keys,
    renormalised over the patch keys."""
    rows, cols = grid
    coords = np.array([(r * patch[0], c * patch[1]) for r in range(rows) for c in range(cols)])
    dist = np.sqrt(((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1))
    p = pattern[..., prefix:, prefix:].astype(np.float64)
    per_query = (p * dist).sum(-1) / p.sum(-1)
    return per_query.mean(-1)


def ref_sink(pattern: np.ndarray, prefix: int) -> np.ndarray:
    return pattern[..., :prefix].astype(np.float64).sum(-1).mean(-1)


def ref_density(pattern: np.ndarray, mass: float = 0.9) -> np.ndarray:
    """Mean over queries of (fewest keys holding `mass` of the row) / keys: with the row
    sorted increasingly and float32 partial sums accumulated in float64, the keys that can be
    left out are those whose partial sum stays within (1 - mass) of the total."""
    p = pattern.astype(np.float32)
    flat = p.reshape(-1, p.shape[-1])
    out = np.empty(len(flat))
    for i, row in enumerate(flat):
        partial = np.cumsum(np.sort(row).astype(np.float64)).astype(np.float32)
        threshold = np.float32(1.0 - mass) * partial[-1]
        out[i] = (len(row) - np.count_nonzero(partial <= threshold)) / len(row)
    return out.reshape(p.shape[:-1]).mean(-1)


def ref_value_norm(values: np.ndarray) -> np.ndarray:
    return np.linalg.norm(values.astype(np.float64), axis=-1).mean(-1)


def ref_head_out_norm(z: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """z (..., heads, tokens, d_head), weight (d_model, heads * d_head) -> (..., heads)."""
    heads, d_head = z.shape[-3], z.shape[-1]
    w = weight.astype(np.float64).reshape(weight.shape[0], heads, d_head)
    out = np.einsum("...htd,ehd->...hte", z.astype(np.float64), w)
    return np.linalg.norm(out, axis=-1).mean(-1)


def ref_metrics(
    pattern: np.ndarray,
    v: np.ndarray,
    z: np.ndarray,
    weight: np.ndarray,
    prefix: int,
    grid: tuple[int, int],
    patch: int,
) -> dict[str, np.ndarray]:
    """Every attention metric by its name, from the patterns ``(..., heads, tokens, tokens)``,
    values and head mixes ``(..., heads, tokens, d_head)`` and the output projection."""
    tokens = pattern.shape[-1]
    return {
        "attention_entropy": ref_entropy(pattern),
        "attention_entropy_norm": ref_entropy(pattern) / np.log(tokens),
        "attention_distance": ref_distance(pattern, prefix, grid, patch),
        "sink_share": ref_sink(pattern, prefix),
        "density": ref_density(pattern),
        "value_norm": ref_value_norm(v),
        "head_out_norm": ref_head_out_norm(z, weight),
    }


def probe_spec(tmp_path: Path, family: str, layers: list, metrics: Any = "all", **extra: Any):
    """A model block for ``family`` (a key of FAMILIES, or ``torchvision``) whose sharpened
    weights are saved as a local checkpoint (timm) or built by a python function
    (torchvision), parsed into a ModelSpec; and the torch model with the same weights."""
    from actpipe.models import ModelSpec

    if family == "torchvision":
        model = small_torchvision_vit()
        block = {
            "source": "python",
            "name": f"{Path(__file__).resolve()}:small_torchvision_vit",
            "weights": "random",
        }
        size = 32
    else:
        entry = FAMILIES[family]
        model = timm_model(family)
        path = save_weights(model, tmp_path / f"{family}.pt")
        block = {
            "source": "timm",
            "name": entry["arch"],
            "kwargs": entry["kwargs"],
            "weights": str(path),
        }
        size = entry["size"]
    block.update(
        layers=layers,
        reduce="cls",
        preprocess={"preset": "imagenet", "size": size, "resize": size},
        batch_size=4,
        **extra,
    )
    if metrics is not None:
        block["metrics"] = metrics
    return ModelSpec.from_config(family, block), model, size
