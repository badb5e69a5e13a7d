"""The study grid: architecture specs named in a config, and a table of their sizes."""

from __future__ import annotations

from pathlib import Path

import yaml

from svbench.models import ArchSpec, summarize


def specs_from_grid(grid: list[dict], where: str = "grid") -> list[ArchSpec]:
    """Validate every grid entry (preset + overrides or a full spec); names must be unique."""
    if not grid:
        raise ValueError(f"config key {where}: the grid is empty")
    specs = [ArchSpec.from_dict(entry, where=f"{where}[{i}]") for i, entry in enumerate(grid)]
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.name in seen:
            first = seen[spec.name]
            raise ValueError(f"config key {where}[{i}].name: {spec.name!r} is already used by {where}[{first}]")
        seen[spec.name] = i
    return specs


def grid_from_config(path: Path) -> list[ArchSpec]:
    """The specs of a config file's ``grid`` key."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    if "grid" not in config:
        raise ValueError(f"{path}: no 'grid' key")
    return specs_from_grid(config["grid"], where=f"{path}: grid")


def arch_table(specs: list[ArchSpec], frames: int = 200) -> str:
    """A plain-text table: name, block, stage depths, widths, params (M), MACs (G) for ``frames`` frames."""
    header = f"{'name':<22} {'block':<10} {'stages':<14} {'widths':<20} {'params (M)':>10} {'MACs (G)':>9}"
    lines = [header, "-" * len(header)]
    for spec in specs:
        s = summarize(spec, frames=frames)
        lines.append(f"{spec.name:<22} {spec.block:<10} {'-'.join(map(str, spec.stages)):<14} "
                     f"{'-'.join(map(str, spec.stage_widths)):<20} {s['params'] / 1e6:>10.3f} {s['macs'] / 1e9:>9.3f}")
    lines.append(f"MACs: convolutions and linear layers, PyTorch FLOP counter / 2, {frames} frames x 80 mel bins")
    return "\n".join(lines)
