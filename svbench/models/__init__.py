"""Architecture specs, ResNet backbones, pooling, margin heads, and params/MACs of built models.

The specs import no torch: the workflow reads the grid (``specs_from_grid``) every time Snakemake parses it, on
every SLURM job too, and importing torch costs about 2 s. The torch parts load on first use (PEP 562).
"""

from importlib import import_module

from .spec import MACS_FRAMES, PRESETS, ArchSpec, preset

_WITH_TORCH = {"count_macs": "complexity", "count_params": "complexity", "summarize": "complexity",
               "AAMSoftmax": "heads", "build": "resnet"}

__all__ = [
    "AAMSoftmax",
    "ArchSpec",
    "MACS_FRAMES",
    "PRESETS",
    "build",
    "count_macs",
    "count_params",
    "preset",
    "summarize",
]


def __getattr__(name: str) -> object:
    if name in _WITH_TORCH:
        return getattr(import_module(f".{_WITH_TORCH[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
