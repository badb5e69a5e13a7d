"""The study grid: architecture specs named in a config, and a table of their sizes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from svbench.errors import UserError
from svbench.fileio import read_yaml_mapping
from svbench.models import MACS_FRAMES, ArchSpec

# Where an architecture trains, not what it is: a grid entry may set its training job's layout (a ResNet-293 on
# 4 nodes beside a ResNet-34 on one). Nothing else of the training may differ between architectures.
LAYOUT_KEYS = ("nodes", "processes")


def _architecture(entry: object) -> object:
    """A grid entry without its layout keys: what ArchSpec describes."""
    return {k: v for k, v in entry.items() if k not in LAYOUT_KEYS} if isinstance(entry, dict) else entry


def specs_from_grid(grid: list[dict], where: str = "grid", n_mels: int | None = None) -> list[ArchSpec]:
    """Validate every grid entry (preset + overrides or a full spec); names must be unique. ``n_mels``: the
    feature store's mel bins (config ``features.n_mels``), the input every model of the study takes."""
    if not grid:
        raise UserError(f"config key {where}: the grid is empty")
    specs = [ArchSpec.from_dict(_architecture(entry), where=f"{where}[{i}]") for i, entry in enumerate(grid)]
    if n_mels is not None:
        specs = [replace(spec, n_mels=n_mels) for spec in specs]
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.name in seen:
            first = seen[spec.name]
            raise UserError(f"config key {where}[{i}].name: {spec.name!r} is already used by {where}[{first}]")
        seen[spec.name] = i
    return specs


def training_layouts(grid: list[dict], training: dict, where: str = "grid") -> dict[str, dict[str, int]]:
    """Each architecture's training layout, ``{"nodes": N, "processes": P}``: its grid entry's keys over the
    ``training`` block's. The global batch is the training's whatever the layout (it must divide evenly);
    the error names the grid entry's key."""
    from svbench.training.recipe import Recipe  # no torch

    base = Recipe.from_dict(training)
    layouts = {}
    for i, (entry, spec) in enumerate(zip(grid, specs_from_grid(grid, where), strict=True)):
        layout = {key: getattr(base, key) for key in LAYOUT_KEYS}
        for key in LAYOUT_KEYS:
            value = entry.get(key, layout[key])
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"config key {where}[{i}].{key}: expected an integer >= 1, got {value!r}")
            layout[key] = value
        base.rank_batch(layout["nodes"] * layout["processes"], where=f"{where}[{i}] ({spec.name}): training")
        layouts[spec.name] = layout
    return layouts


def grid_from_config(path: Path) -> list[ArchSpec]:
    """The specs of a config file's ``grid`` key; a file that cannot be read or parsed is a UserError naming it."""
    config = read_yaml_mapping(path, "config")
    if "grid" not in config:
        raise UserError(f"{path}: no 'grid' key")
    return specs_from_grid(config["grid"], where=f"{path}: grid", n_mels=(config.get("features") or {}).get("n_mels"))


def arch_table(specs: list[ArchSpec], frames: int = MACS_FRAMES) -> str:
    """A plain-text table: name, block, stage depths, widths, params (M), MACs (G) for ``frames`` frames."""
    from svbench.models import summarize  # torch: not when the workflow reads the grid
    header = f"{'name':<22} {'block':<10} {'stages':<14} {'widths':<20} {'params (M)':>10} {'MACs (G)':>9}"
    lines = [header, "-" * len(header)]
    for spec in specs:
        s = summarize(spec, frames=frames)
        lines.append(f"{spec.name:<22} {spec.block:<10} {'-'.join(map(str, spec.stages)):<14} "
                     f"{'-'.join(map(str, spec.stage_widths)):<20} {s['params'] / 1e6:>10.3f} {s['macs'] / 1e9:>9.3f}")
    bins = "/".join(sorted({str(spec.n_mels) for spec in specs}))
    lines.append(f"MACs: convolutions and linear layers, PyTorch FLOP counter / 2, {frames} frames x {bins} mel bins")
    return "\n".join(lines)
