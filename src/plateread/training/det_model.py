"""The plate detector network: a thin depthwise-separable backbone to stride 32, an FPN-like
neck back to stride 4 and CenterNet heads.

Plates are small, wide and low in texture variety, so the capacity sits in the neck (fusing the
high-resolution stride-4/8 features that see characters with the stride-32 context that sees the
car) rather than in a deep backbone; that keeps a 640×384 forward pass near 10 ms on one thread.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Channels per backbone stage (strides 2, 4, 8, 16, 32) and of the neck.
STAGES = (16, 24, 48, 96, 160)
NECK = 48


def conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DWBlock(nn.Module):
    """Depthwise 3×3 + pointwise 1×1; residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.dw = nn.Sequential(nn.Conv2d(cin, cin, 3, stride, dilation, dilation=dilation,
                                          groups=cin, bias=False), nn.BatchNorm2d(cin))
        self.pw = conv_bn(cin, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return x + y if self.residual else y


class PlateNet(nn.Module):
    """Outputs (heatmap after sigmoid, log size, offset, corners) at stride 4."""

    def __init__(self, stages: tuple[int, ...] = STAGES, neck: int = NECK,
                 depth: tuple[int, ...] = (1, 2, 3, 3)) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = stages
        self.stem = conv_bn(3, c1, 3, 2)

        def stage(cin: int, cout: int, n: int, dilate: bool = False) -> nn.Sequential:
            blocks = [DWBlock(cin, cout, 2)]
            blocks += [DWBlock(cout, cout, 1, 2 if (dilate and i % 2) else 1) for i in range(n - 1)]
            return nn.Sequential(*blocks)

        self.s4 = stage(c1, c2, depth[0])
        self.s8 = stage(c2, c3, depth[1])
        self.s16 = stage(c3, c4, depth[2], dilate=True)
        self.s32 = stage(c4, c5, depth[3], dilate=True)
        self.lat32, self.lat16 = conv_bn(c5, neck, 1), conv_bn(c4, neck, 1)
        self.lat8, self.lat4 = conv_bn(c3, neck, 1), conv_bn(c2, neck, 1)
        self.fuse16, self.fuse8 = DWBlock(neck, neck), DWBlock(neck, neck)
        self.fuse4 = DWBlock(neck, neck)
        self.head_heat = nn.Sequential(DWBlock(neck, neck), nn.Conv2d(neck, 1, 1))
        self.head_reg = nn.Sequential(DWBlock(neck, neck), nn.Conv2d(neck, 12, 1))
        for head in (self.head_heat[-1], self.head_reg[-1]):  # start calm: near-constant outputs
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)
        nn.init.constant_(self.head_heat[-1].bias, -4.6)  # prior 0.01: focal-loss standard start
        self.register_buffer("mean", torch.tensor([114.0, 114.0, 114.0]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x``: N×3×H×W BGR float 0–255 (H, W multiples of 32)."""
        x = (x - self.mean) * (1 / 64.0)
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        f32 = self.s32(f16)
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
        p = self.lat32(f32)
        p = self.fuse16(self.lat16(f16) + up(p))
        p = self.fuse8(self.lat8(f8) + up(p))
        p = self.fuse4(self.lat4(f4) + up(p))
        heat = torch.sigmoid(self.head_heat(p))
        reg = self.head_reg(p)
        return heat, reg[:, 0:2], reg[:, 2:4], reg[:, 4:12]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
