"""Loading weights: seeded random init, local checkpoint files, or pretrained loaders."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from .._io import sha256_file

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "module")


class WeightsError(ValueError):
    """Weights that cannot be loaded into the configured model."""


def state_dict_sha256(module: torch.nn.Module) -> str:
    """A checksum of a module's parameters and buffers (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(key.encode())
        digest.update(str(t.dtype).encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file: safetensors, or a pickle read with ``weights_only=True``.

    Pickles may hold the state dict itself or a checkpoint dict with one of the keys
    ``state_dict``, ``model``, ``model_state_dict``. A ``module.`` prefix (DataParallel) is
    removed. Pickles that need arbitrary code to load are refused, never executed.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle.UnpicklingError and friends
            raise WeightsError(
                f"refused to load {str(path)!r}: it is not a plain tensor checkpoint that can be "
                f"read with weights_only=True ({type(exc).__name__}: {str(exc)[:300]}). Re-save "
                "it as a state dict (torch.save(model.state_dict(), path)) or as .safetensors"
            ) from exc
    if isinstance(state, dict):
        for key in STATE_DICT_KEYS:
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{str(path)!r} does not hold a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_state_dict(
    module: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool, where: str
) -> dict[str, list[str]]:
    """Load ``state`` into ``module``; with ``strict`` any missing/unexpected key is an error."""
    result = module.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if strict and (missing or unexpected):
        raise WeightsError(
            f"{where}: the checkpoint does not match the architecture. "
            f"Missing keys ({len(missing)}): {missing[:10]}; unexpected keys "
            f"({len(unexpected)}): {unexpected[:10]}. Check the model name, or set "
            "'strict: false' in the model block to load what matches (recorded in the output)"
        )
    return {"missing_keys": missing, "unexpected_keys": unexpected}


def describe_weights_file(path: str | Path) -> dict[str, Any]:
    return {"path": str(Path(path).resolve()), "sha256": sha256_file(path)}


def is_weights_path(value: str) -> bool:
    return value.endswith(CHECKPOINT_SUFFIXES) or "/" in value or Path(value).exists()
