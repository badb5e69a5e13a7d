"""``svbench config check``: a config file read as svbench reads it, before Snakemake does."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_config_check(args: argparse.Namespace) -> int:
    from svbench.config_file import check_config_file

    for path in args.files:
        print(f"{path}: {', '.join(check_config_file(path))}: ok")
    return 0


def cmd_config_tables(args: argparse.Namespace) -> int:
    from svbench.config_tables import update_tables
    from svbench.schemas import CONFIG_SCHEMA

    current = update_tables(args.readme, check=args.check)
    if args.check and not current:
        schema = CONFIG_SCHEMA.relative_to(CONFIG_SCHEMA.parents[2])  # svbench/schemas/config.schema.yaml
        print(f"{args.readme}: the key tables differ from {schema}: run svbench config tables {args.readme}")
        return 1
    print(f"{args.readme}: key tables {'current' if current else 'written'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the config commands to ``svbench``."""
    config = sub.add_parser("config", help="study config files").add_subparsers(dest="config_cmd", required=True)
    s = config.add_parser("check", help="read config files as the workflow will: FILE:LINE:COL for invalid YAML, "
                          "the energy block and the grid checked")
    s.add_argument("files", nargs="+", type=Path, metavar="FILE")
    s.set_defaults(func=cmd_config_check)
    s = config.add_parser("tables", help="write the key tables of a README (between <!-- keys: SECTION --> and "
                          "<!-- end keys -->) from the config schema, where every default and meaning is written")
    s.add_argument("readme", type=Path, metavar="README")
    s.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table differs")
    s.set_defaults(func=cmd_config_tables)
