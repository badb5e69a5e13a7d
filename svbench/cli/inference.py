"""``svbench embed`` and ``svbench score``: embeddings of a trained model and the trial lists' metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from svbench.cli.arguments import named_path


def cmd_embed(args: argparse.Namespace) -> int:
    from svbench.embedding import embed

    embed(args.model, args.test_features, args.test_manifest, args.train_features, args.train_manifest, args.out,
          crop_frames=args.crop_frames, seed=args.seed, device=args.device)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from svbench.scoring import score_lists

    metrics = score_lists(args.embeddings, dict(args.trials), args.out, top_n=args.top_n)
    for name, m in metrics.items():
        if isinstance(m, dict):
            print(f"{name}: " + ", ".join(f"{b} EER {m[b]['eer']:.2%}" for b in m if isinstance(m[b], dict)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the inference commands to ``svbench``."""
    s = sub.add_parser("embed", help="embeddings of the evaluation set and the training mean/cohort")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--test-features", type=Path, required=True)
    s.add_argument("--test-manifest", type=Path, required=True)
    s.add_argument("--train-features", type=Path, required=True)
    s.add_argument("--train-manifest", type=Path, required=True)
    s.add_argument("--crop-frames", type=int, default=200)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_embed)

    s = sub.add_parser("score", help="cosine and AS-norm scores and metrics for trial lists")
    s.add_argument("--embeddings", type=Path, required=True)
    s.add_argument("--trials", type=named_path, nargs="+", required=True, metavar="NAME=PATH")
    s.add_argument("--top-n", type=int, default=300)
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_score)
