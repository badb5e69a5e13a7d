"""A study config file as svbench reads it before Snakemake does.

Snakemake's message for a config that is not YAML names neither the file nor the line; svbench's names
``FILE:LINE:COL``. The blocks svbench checks itself (the energy block, whose message must not echo a secret, and
the grid) are checked with the file named; Snakemake's schema check follows when the workflow runs, naming the key.
A file may be partial (a ``--configfile`` over ``config/config.yaml``): only the blocks it has are checked.
"""

from __future__ import annotations

from pathlib import Path

from svbench.errors import UserError
from svbench.fileio import read_yaml_mapping
from svbench.instrument.config import validate_energy_config
from svbench.study.grid import specs_from_grid


def check_config_file(path: Path | str) -> list[str]:
    """Read ``path`` and check the blocks of it svbench owns; what was checked, in words. UserError naming the file
    (and line and column, or the key) on the first fault."""
    config = read_yaml_mapping(path, "config")
    checked = ["valid YAML"]
    try:
        if "energy" in config:
            validate_energy_config(config["energy"] or {})
            checked.append("energy block")
        if "grid" in config:
            specs_from_grid(config["grid"])
            checked.append("grid")
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    return checked
