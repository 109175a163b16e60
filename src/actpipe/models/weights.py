"""Loading weights: seeded random init, local checkpoint files, or pretrained loaders.

Local pickles are read with ``torch.load(weights_only=True)``: only tensors and plain
containers are unpickled, so a checkpoint carrying code is refused before that code runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from .._io import sha256_file
from ..errors import WeightsError

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "module")


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


def read_checkpoint(
    path: str | Path, where: str = "", mmap: bool = False
) -> dict[str, torch.Tensor]:
    """A state dict from a local file: safetensors, or a pickle read with ``weights_only=True``.

    Pickles may hold the state dict itself or a checkpoint dict with one of the keys
    ``state_dict``, ``model``, ``model_state_dict``, ``module``. A ``module.`` prefix
    (DataParallel) is removed. Pickles that need arbitrary code to load are refused, never
    executed. ``mmap`` maps the file instead of reading it (cheap key checks).
    """
    path = Path(path)
    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise WeightsError(
            f"{prefix}weights file {str(path)!r} does not exist; set 'weights:' to an existing "
            ".pt/.pth/.safetensors file, 'random' or 'pretrained'"
        )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise WeightsError(f"{prefix}cannot read {str(path)!r}: {exc}") from exc
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if mmap and "mmap" in str(exc):  # legacy (non-zip) format cannot be mapped
                return read_checkpoint(path, where, mmap=False)
            raise _refused(path, prefix, exc) from exc
        except Exception as exc:  # pickle.UnpicklingError and friends
            raise _refused(path, prefix, exc) from exc
    if isinstance(state, dict):
        for key in STATE_DICT_KEYS:
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{prefix}{str(path)!r} does not hold a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _refused(path: Path, prefix: str, exc: BaseException) -> WeightsError:
    return WeightsError(
        f"{prefix}refused to load {str(path)!r}: it is not a plain tensor checkpoint that can "
        f"be read with weights_only=True ({type(exc).__name__}: {str(exc)[:300]}). Re-save it "
        "as a state dict (torch.save(model.state_dict(), path)) or as .safetensors"
    )


def select_prefix(
    state: dict[str, torch.Tensor], prefix: str, where: str = ""
) -> dict[str, torch.Tensor]:
    """Keep the keys starting with ``prefix``, with it removed (e.g. ``visual.`` of SLIP)."""
    if not prefix:
        return state
    selected = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not selected:
        heads = sorted({k.split(".", 1)[0] + "." for k in state})
        raise WeightsError(
            f"{where}: no checkpoint key starts with weights_prefix {prefix!r}; the keys start "
            f"with {heads[:10]}"
        )
    return selected


def _mismatch_message(
    where: str, missing: list[str], unexpected: list[str], shapes: list[str]
) -> str:
    parts = [f"{where}: the checkpoint does not match the architecture."]
    if missing:
        parts.append(f"Missing keys ({len(missing)}): {missing[:10]}.")
    if unexpected:
        parts.append(f"Unexpected keys ({len(unexpected)}): {unexpected[:10]}.")
    if shapes:
        parts.append(f"Keys with other shapes ({len(shapes)}): {shapes[:10]}.")
    parts.append(
        "Check the architecture name and the file (a checkpoint of a wrapper may need "
        "'weights_prefix:'), or set 'strict: false' in the model block to load what matches "
        "(recorded in the output)"
    )
    return " ".join(parts)


def check_state_dict(
    module: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool, where: str
) -> dict[str, list[str]]:
    """Compare keys and shapes of ``state`` with ``module`` (which may live on the meta device).

    Shape differences are always an error; missing/unexpected keys only with ``strict``.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if shapes or (strict and (missing or unexpected)):
        raise WeightsError(_mismatch_message(where, missing, unexpected, shapes))
    return {"missing_keys": missing, "unexpected_keys": unexpected}


def load_state_dict(
    module: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool, where: str
) -> dict[str, list[str]]:
    """Load ``state`` into ``module``; with ``strict`` any missing/unexpected key is an error."""
    keys = check_state_dict(module, state, strict, where)
    module.load_state_dict(state, strict=False)
    return keys


def describe_weights_file(path: str | Path) -> dict[str, Any]:
    return {"path": str(Path(path).resolve()), "sha256": sha256_file(path)}
