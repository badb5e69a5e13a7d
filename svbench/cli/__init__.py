"""``svbench <command>``: argument parsing only; every command calls one library function.

Each module here registers one group of commands; this one assembles them and turns bad input into one line.
"""

from __future__ import annotations

import argparse
import logging
import sys

from svbench.cli import config, corpus, energy, inference, study, training
from svbench.errors import UserError

GROUPS = (corpus, training, inference, energy, study, config)


def build_parser() -> argparse.ArgumentParser:
    """The ``svbench`` parser with every command group registered."""
    parser = argparse.ArgumentParser(prog="svbench", description="What speaker-verification backbones cost: "
                                     "accuracy, energy and carbon of training and inference.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command_name", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        status = args.func(args)
    except (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        # bad input (or a path the OS refused, which its message names): one line, not a traceback;
        # anything else is a bug in svbench and keeps its traceback
        print(f"svbench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status)
