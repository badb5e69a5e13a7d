"""Pooling of frame-level ResNet maps (B, C, F, T) into one utterance-level vector."""

from __future__ import annotations

import torch
from torch import nn


def _std_over_time(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    # Unbiased variance as in WeSpeaker; a single frame has no unbiased variance (it would be NaN),
    # so very short inputs fall back to the biased one (= 0) instead of poisoning the embedding.
    correction = 1 if x.shape[-1] > 1 else 0
    return torch.sqrt(torch.var(x, dim=-1, correction=correction) + eps)


class TSTP(nn.Module):
    """Temporal statistics pooling: mean and standard deviation over time (x-vector style)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim

    @property
    def out_dim(self) -> int:
        return 2 * self.in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1, -2)  # (B, C, F, T) -> (B, C*F, T)
        return torch.cat([x.mean(dim=-1), _std_over_time(x)], dim=1)


class ASP(nn.Module):
    """Attentive statistics pooling (ECAPA-TDNN; WeSpeaker's ASTP without global context).

    A per-channel, per-frame softmax attention over time, then the weighted mean and std.
    """

    def __init__(self, in_dim: int, bottleneck: int = 128) -> None:
        super().__init__()
        self.in_dim = in_dim
        # 1x1 Conv1d = a Linear applied at every frame, without transposing.
        self.attention = nn.Sequential(
            nn.Conv1d(in_dim, bottleneck, kernel_size=1),
            nn.Tanh(),  # WeSpeaker notes ReLU here converges badly
            nn.Conv1d(bottleneck, in_dim, kernel_size=1),
        )

    @property
    def out_dim(self) -> int:
        return 2 * self.in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1, -2)  # (B, C, F, T) -> (B, C*F, T)
        alpha = torch.softmax(self.attention(x), dim=-1)
        mean = torch.sum(alpha * x, dim=-1)
        var = torch.sum(alpha * x * x, dim=-1) - mean * mean
        return torch.cat([mean, torch.sqrt(var.clamp(min=1e-7))], dim=1)


def make_pooling(kind: str, in_dim: int) -> TSTP | ASP:
    if kind == "tstp":
        return TSTP(in_dim)
    if kind == "asp":
        return ASP(in_dim)
    raise ValueError(f"unknown pooling {kind!r} (known: tstp, asp)")
