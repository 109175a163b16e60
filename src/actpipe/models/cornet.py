"""CORnet-S: a shallow recurrent CNN whose four areas are named after the ventral stream.

Module names follow the published model, so published layer names (``V1``, ``V2``, ``V4``,
``IT``, ``decoder.avgpool``) and published checkpoints (``state_dict`` with a ``module.``
prefix, removed on loading) work unchanged. Weights come from a local file
(``source: actpipe``, ``name: cornet_s``, ``weights: /path/to/cornet_s.pth``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class CORblockS(nn.Module):
    """One recurrent area: a 1x1 input convolution, then ``times`` bottleneck passes.

    The first pass halves the resolution (stride-2 middle convolution) and adds a projected
    skip; later passes reuse the same convolutions with stride 1 and an identity skip, each
    with its own batch norms (``norm{1,2,3}_{t}``). The block's output is the last pass.
    """

    scale = 4

    def __init__(self, in_channels: int, out_channels: int, times: int = 1):
        super().__init__()
        self.times = times
        wide = out_channels * self.scale
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.skip = nn.Conv2d(out_channels, out_channels, kernel_size=1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(out_channels, wide, kernel_size=1, bias=False)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(wide, wide, kernel_size=3, stride=2, padding=1, bias=False)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(wide, out_channels, kernel_size=1, bias=False)
        self.nonlin3 = nn.ReLU(inplace=True)
        self.output = nn.Identity()
        for t in range(times):
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv_input(inp)
        output = x
        for t in range(self.times):
            if t == 0:
                skip = self.norm_skip(self.skip(x))
                self.conv2.stride = (2, 2)
            else:
                skip = x
                self.conv2.stride = (1, 1)
            x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = self.nonlin2(getattr(self, f"norm2_{t}")(self.conv2(x)))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = self.nonlin3(x + skip)
            output = self.output(x)
        return output


def cornet_s(num_classes: int = 1000) -> nn.Sequential:
    """CORnet-S with areas ``V1``, ``V2`` (2 passes), ``V4`` (4), ``IT`` (2) and ``decoder``."""
    v1 = nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)),
                ("norm1", nn.BatchNorm2d(64)),
                ("nonlin1", nn.ReLU(inplace=True)),
                ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ("conv2", nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1, bias=False)),
                ("norm2", nn.BatchNorm2d(64)),
                ("nonlin2", nn.ReLU(inplace=True)),
                ("output", nn.Identity()),
            ]
        )
    )
    decoder = nn.Sequential(
        OrderedDict(
            [
                ("avgpool", nn.AdaptiveAvgPool2d(1)),
                ("flatten", nn.Flatten()),
                ("linear", nn.Linear(512, num_classes)),
                ("output", nn.Identity()),
            ]
        )
    )
    model = nn.Sequential(
        OrderedDict(
            [
                ("V1", v1),
                ("V2", CORblockS(64, 128, times=2)),
                ("V4", CORblockS(128, 256, times=4)),
                ("IT", CORblockS(256, 512, times=2)),
                ("decoder", decoder),
            ]
        )
    )
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            n = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            nn.init.normal_(module.weight, 0.0, (2.0 / n) ** 0.5)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
