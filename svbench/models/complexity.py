"""Parameter and MAC counts measured on the built model (never typed in by hand)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .resnet import build
from .spec import MACS_FRAMES, ArchSpec


def count_params(model: nn.Module) -> int:
    """All parameters of `model` (the backbone; the margin head is a separate module)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, *, n_mels: int, frames: int = MACS_FRAMES) -> int:
    """Multiply-accumulates of one forward pass on a single (frames x n_mels) input.

    PyTorch's FlopCounterMode counts matrix work only: convolutions and linear layers
    (2 FLOPs per MAC; biases, BatchNorm, ReLU, residual additions and pooling not counted).
    WeSpeaker's published MACs come from thop, which counts the same conv/linear MACs, nothing
    for functional ReLU and additions, and 4 ops per input element of each affine BatchNorm
    (2 for normalising, doubled for the affine). Adding that BN term to this count reproduces every
    published figure of WeSpeaker's ResNet table to within 0.2 % (checked in tests/models/test_models.py); without it
    this count is 0.5 % (ResNet34) to 1.9 % (ResNet50) lower. We report the matrix MACs only:
    BN folds into the convolutions at inference.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(1, frames, n_mels, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def summarize(spec: ArchSpec, frames: int = MACS_FRAMES) -> dict[str, Any]:
    """Params and MACs of `spec`'s backbone, with the spec itself, for spec.json and the report."""
    # Built on the meta device: shapes only, no weights or arithmetic, so even ResNet293 is instant.
    with torch.device("meta"):
        model = build(spec)
    return {
        "name": spec.name,
        "block": spec.block,
        "stages": list(spec.stages),
        "width": spec.width,
        "widths": list(spec.stage_widths),
        "embedding": spec.embedding,
        "pooling": spec.pooling,
        "n_mels": spec.n_mels,
        "params": count_params(model),
        "macs": count_macs(model, frames=frames, n_mels=spec.n_mels),
        "macs_frames": frames,
    }
