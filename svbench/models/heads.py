"""Margin softmax heads used only in training (not counted in the backbone's params/MACs)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AAMSoftmax(nn.Module):
    """Additive angular margin (ArcFace): the target logit is s*cos(theta + m), the others s*cos(theta).

    Returns scaled logits; the caller applies cross-entropy. Training ramps the margin with
    `set_margin` (WeSpeaker: 0 until epoch 20, then up to 0.2 by epoch 40).
    """

    def __init__(
        self,
        embedding: int,
        n_classes: int,
        scale: float = 32.0,
        margin: float = 0.2,
        easy_margin: bool = False,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.n_classes = n_classes
        self.scale = scale
        self.easy_margin = easy_margin
        self.weight = nn.Parameter(torch.empty(n_classes, embedding))
        nn.init.xavier_uniform_(self.weight)
        self.set_margin(margin)

    def set_margin(self, margin: float) -> None:
        self.margin = float(margin)
        self.cos_m = math.cos(self.margin)
        self.sin_m = math.sin(self.margin)
        # Past theta = pi - m, cos(theta + m) would rise again as theta grows. Beyond that threshold
        # use cos(theta) - mm instead. WeSpeaker's ArcMarginProduct (its `mmm`) takes
        # mm = 1 + cos(pi - m) = 1 - cos(m), which meets cos(theta + m) = -1 exactly at the threshold;
        # the older ArcFace choice sin(pi - m) * m leaves a small jump there.
        self.th = math.cos(math.pi - self.margin)
        self.mm = 1.0 + math.cos(math.pi - self.margin)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = F.linear(F.normalize(emb), F.normalize(self.weight))
        # clamp: rounding can push |cos| a hair above 1, and sqrt of a negative is NaN.
        sine = torch.sqrt((1.0 - cosine * cosine).clamp(min=0.0))
        phi = cosine * self.cos_m - sine * self.sin_m  # cos(theta + m)
        if self.easy_margin:
            phi = torch.where(cosine > 0, phi, cosine)
        else:
            phi = torch.where(cosine > self.th, phi, cosine - self.mm)
        target = F.one_hot(labels.long(), self.n_classes).bool()
        return self.scale * torch.where(target, phi, cosine)

    def extra_repr(self) -> str:
        return (
            f"embedding={self.embedding}, n_classes={self.n_classes}, scale={self.scale}, "
            f"margin={self.margin}, easy_margin={self.easy_margin}"
        )
