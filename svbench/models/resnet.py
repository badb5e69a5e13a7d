"""WeSpeaker-style ResNet speaker-embedding backbones, built from an ArchSpec."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pooling import make_pooling
from .spec import ArchSpec


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out))


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    # Projection only where the shape changes; identity otherwise.
    if stride != 1 or c_in != c_out:
        return _conv_bn(c_in, c_out, 1, stride)
    return nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN, post-activation (ReLU after the residual sum)."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv_bn(c_in, planes, 3, stride)
        self.conv2 = _conv_bn(planes, planes, 3)
        self.shortcut = _shortcut(c_in, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))
        out = self.conv2(out)
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand to 4x planes; post-activation."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = _conv_bn(c_in, planes, 1)
        self.conv2 = _conv_bn(planes, planes, 3, stride)
        self.conv3 = _conv_bn(planes, c_out, 1)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))
        out = F.relu(self.conv2(out))
        out = self.conv3(out)
        return F.relu(out + self.shortcut(x))


BLOCK_TYPES: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


class ResNet(nn.Module):
    """(B, T, F) fbank -> (B, embedding): stem, four stages, statistics pooling, one linear layer.

    As WeSpeaker: 3x3 stride-1 stem without max-pool; stages 2-4 halve frequency and time;
    the pooled statistics go through a single Linear (no BN after it), which is what
    reproduces WeSpeaker's published parameter counts.
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        block = BLOCK_TYPES[spec.block]
        widths = spec.stage_widths
        self.stem = _conv_bn(1, widths[0], 3)
        c_in = widths[0]
        stages = []
        for i, (depth, planes) in enumerate(zip(spec.stages, widths, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(depth):
                blocks.append(block(c_in, planes, stride if j == 0 else 1))
                c_in = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        # 3x3 stride-2 padding-1 convs give ceil(F / 2) three times (80 -> 10).
        freq = spec.n_mels
        for _ in range(3):
            freq = (freq + 1) // 2
        self.pool = make_pooling(spec.pooling, c_in * freq)
        self.embedding = nn.Linear(self.pool.out_dim, spec.embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.spec.n_mels:
            raise ValueError(
                f"{self.spec.name}: expected features (batch, frames, {self.spec.n_mels}), got {tuple(x.shape)}"
            )
        x = x.transpose(1, 2).unsqueeze(1)  # (B, T, F) -> (B, 1, F, T): frequency is the height
        x = F.relu(self.stem(x))
        x = self.stages(x)
        return self.embedding(self.pool(x))


def build(spec: ArchSpec) -> ResNet:
    """The backbone for `spec` (no classification head; see heads.AAMSoftmax)."""
    return ResNet(spec)
