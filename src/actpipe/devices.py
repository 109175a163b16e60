"""Choosing the compute device: CUDA, then MPS, then CPU, unless the config names one."""

from __future__ import annotations

import torch


def select_device(name: str | None = "auto") -> torch.device:
    """Return the device named in the config, or the best one present for ``auto``.

    Raises ``ValueError`` when a named accelerator is not available, rather than silently
    falling back to a different device (results would then differ from what was asked).
    """
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} was requested but CUDA is not available on this machine; "
            "set extraction.device to 'auto' or 'cpu'"
        )
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"device {name!r} was requested but MPS is not available; use 'auto' or 'cpu'"
            )
    return device
