"""``svbench config check``: a config file read as svbench reads it, before Snakemake does."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_config_check(args: argparse.Namespace) -> int:
    from svbench.config_file import check_config_file

    for path in args.files:
        print(f"{path}: {', '.join(check_config_file(path))}: ok")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the config commands to ``svbench``."""
    config = sub.add_parser("config", help="study config files").add_subparsers(dest="config_cmd", required=True)
    s = config.add_parser("check", help="read config files as the workflow will: FILE:LINE:COL for invalid YAML, "
                          "the energy block and the grid checked")
    s.add_argument("files", nargs="+", type=Path, metavar="FILE")
    s.set_defaults(func=cmd_config_check)
