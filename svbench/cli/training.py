"""``svbench train``: one architecture, resumable."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from svbench.cli.arguments import json_object
from svbench.errors import UserError


def cmd_train(args: argparse.Namespace) -> int:
    from svbench.models import ArchSpec
    from svbench.training import Preempted, Recipe, large_margin_recipe, train

    spec = ArchSpec.from_dict(args.arch, where="--arch")
    if args.large_margin is not None and args.init is None:
        raise UserError("--large-margin: fine-tuning needs --init, the trained model it starts from")
    # errors name the config key (training.batch_size, large_margin.epochs), as in the workflow
    recipe = (Recipe.from_dict(args.recipe) if args.large_margin is None
              else large_margin_recipe(args.recipe, args.large_margin))
    try:
        train(args.features, args.manifest, spec, recipe, args.out, seed=args.seed, init=args.init)
    except Preempted as exc:
        logging.getLogger("svbench").warning("%s", exc)
        return 143  # as if terminated: the scheduler retries and training resumes
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    import os

    from svbench.training.launch import launch

    command = args.command[1:] if args.command and args.command[0] == "--" else args.command
    argv = launch(command, args.nodes, args.processes, args.node_rank, args.master_addr, args.master_port)
    try:
        os.execvp(argv[0], argv)  # the workload itself: the monitor's signals and its death reach it unchanged
    except OSError as exc:
        raise UserError(f"svbench launch: cannot run {argv[0]!r}: {exc.strerror}") from None
    return 127


def register(sub: argparse._SubParsersAction) -> None:
    """Add the training commands to ``svbench``."""
    s = sub.add_parser("train", help="train one architecture, or fine-tune a trained one (resumes from its checkpoint)")
    s.add_argument("--features", type=Path, required=True)
    s.add_argument("--manifest", type=Path, required=True)
    s.add_argument("--arch", type=json_object, required=True, help="architecture spec as JSON")
    s.add_argument("--recipe", type=json_object, default={}, help="training recipe as JSON")
    s.add_argument("--init", type=Path, help="start from this trained model.pt (backbone and margin head)")
    s.add_argument("--large-margin", type=json_object, help="fine-tune: the config's large_margin block as JSON over "
                   "the --recipe (needs --init)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("launch", help="start a training job's processes on this node: torchrun for nodes × "
                       "processes, then COMMAND in each (launch --nodes N --processes P -- COMMAND ...)")
    s.add_argument("--nodes", type=int, default=1, help="nodes of the job (one launch per node)")
    s.add_argument("--processes", type=int, default=1, help="processes (GPUs) on each node")
    s.add_argument("--node-rank", type=int, help="this node's rank (default: $SVBENCH_NODE_RANK from the monitor, "
                   "else $SLURM_NODEID)")
    s.add_argument("--master-addr", help="the rendezvous host (default: $MASTER_ADDR, else the job's first node)")
    s.add_argument("--master-port", type=int, help="the rendezvous port (default: $MASTER_PORT, else from the job id)")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_launch)
