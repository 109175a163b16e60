"""Tiny torch models for the gradient tests (importable as ``source: python`` entries)."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """conv -> ReLU -> mean pool -> linear (4 outputs); an unused ``side`` branch and a
    ``frozen`` layer whose output is detached before use: neither is on the path to the
    output."""

    def __init__(self, outputs: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.act = nn.ReLU()
        self.side = nn.Conv2d(5, 2, 1)
        self.frozen = nn.Conv2d(5, 5, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(10, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act(self.conv(x))
        self.side(a)  # computed, never used
        b = self.frozen(a).detach()
        features = torch.cat([self.pool(a).flatten(1), self.pool(b).flatten(1)[:, :5]], dim=1)
        return self.head(features)


def small_net() -> nn.Module:
    """conv -> ReLU -> conv -> mean pool -> linear (4 outputs): a smooth-enough function for
    finite differences (no branch that autograd does not see)."""
    from collections import OrderedDict

    return nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(3, 5, 3, padding=1)),
                ("act", nn.ReLU()),
                ("conv2", nn.Conv2d(5, 6, 3, padding=1)),
                ("pool", nn.AdaptiveAvgPool2d(1)),
                ("flat", nn.Flatten()),
                ("head", nn.Linear(6, 4)),
            ]
        )
    )


def tiny_net() -> nn.Module:
    """A :class:`TinyNet` (``source: python``, ``name: tests.helpers.models:tiny_net``)."""
    return TinyNet()


def features_only() -> nn.Module:
    """A model whose output is a feature map, not logits (gradients refuse it)."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
