"""The study grid: architecture specs named in a config, and a table of their sizes."""

from __future__ import annotations

from pathlib import Path

import yaml

from svbench.errors import UserError
from svbench.models import ArchSpec


def specs_from_grid(grid: list[dict], where: str = "grid") -> list[ArchSpec]:
    """Validate every grid entry (preset + overrides or a full spec); names must be unique."""
    if not grid:
        raise UserError(f"config key {where}: the grid is empty")
    specs = [ArchSpec.from_dict(entry, where=f"{where}[{i}]") for i, entry in enumerate(grid)]
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.name in seen:
            first = seen[spec.name]
            raise UserError(f"config key {where}[{i}].name: {spec.name!r} is already used by {where}[{first}]")
        seen[spec.name] = i
    return specs


def grid_from_config(path: Path) -> list[ArchSpec]:
    """The specs of a config file's ``grid`` key; a file that cannot be read or parsed is a UserError naming it."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:  # missing, a directory, unreadable, not text
        raise UserError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)  # yaml names the string it parsed, not the file: we do
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: expected a mapping of config keys, got {type(config).__name__}")
    if "grid" not in config:
        raise UserError(f"{path}: no 'grid' key")
    return specs_from_grid(config["grid"], where=f"{path}: grid")


def arch_table(specs: list[ArchSpec], frames: int = 200) -> str:
    """A plain-text table: name, block, stage depths, widths, params (M), MACs (G) for ``frames`` frames."""
    from svbench.models import summarize  # torch: not when the workflow reads the grid
    header = f"{'name':<22} {'block':<10} {'stages':<14} {'widths':<20} {'params (M)':>10} {'MACs (G)':>9}"
    lines = [header, "-" * len(header)]
    for spec in specs:
        s = summarize(spec, frames=frames)
        lines.append(f"{spec.name:<22} {spec.block:<10} {'-'.join(map(str, spec.stages)):<14} "
                     f"{'-'.join(map(str, spec.stage_widths)):<20} {s['params'] / 1e6:>10.3f} {s['macs'] / 1e9:>9.3f}")
    lines.append(f"MACs: convolutions and linear layers, PyTorch FLOP counter / 2, {frames} frames x 80 mel bins")
    return "\n".join(lines)
