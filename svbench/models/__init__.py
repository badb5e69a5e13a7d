"""Architecture specs, ResNet backbones, pooling, margin heads, and params/MACs of built models."""

from .complexity import count_macs, count_params, summarize
from .heads import AAMSoftmax
from .resnet import build
from .spec import PRESETS, ArchSpec, preset

__all__ = [
    "AAMSoftmax",
    "ArchSpec",
    "PRESETS",
    "build",
    "count_macs",
    "count_params",
    "preset",
    "summarize",
]
