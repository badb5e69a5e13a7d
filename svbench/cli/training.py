"""``svbench train``: one architecture, resumable."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from svbench.cli.arguments import json_object


def cmd_train(args: argparse.Namespace) -> int:
    from svbench.models import ArchSpec
    from svbench.training import Preempted, Recipe, train

    spec = ArchSpec.from_dict(args.arch, where="--arch")
    recipe = Recipe.from_dict(args.recipe)  # errors name the config key (training.batch_size), as in the workflow
    try:
        train(args.features, args.manifest, spec, recipe, args.out, seed=args.seed)
    except Preempted as exc:
        logging.getLogger("svbench").warning("%s", exc)
        return 143  # as if terminated: the scheduler retries and training resumes
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the training commands to ``svbench``."""
    s = sub.add_parser("train", help="train one architecture (resumes from its checkpoint)")
    s.add_argument("--features", type=Path, required=True)
    s.add_argument("--manifest", type=Path, required=True)
    s.add_argument("--arch", type=json_object, required=True, help="architecture spec as JSON")
    s.add_argument("--recipe", type=json_object, default={}, help="training recipe as JSON")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_train)
