"""``svbench embed``, ``svbench score``, ``svbench intervals``: embeddings of a trained model, the trial lists'
metrics and their speaker-bootstrap intervals."""

from __future__ import annotations

import argparse
from pathlib import Path

from svbench.cli.arguments import json_object, named_path


def cmd_embed(args: argparse.Namespace) -> int:
    from svbench.embedding import EmbeddingSettings, embed

    settings = EmbeddingSettings.from_config(args.embedding)
    embed(args.model, args.test_features, args.test_manifest, args.train_features, args.train_manifest, args.out,
          settings, seed=args.seed)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from svbench.scoring import ScoringSettings, score_lists

    settings = ScoringSettings.from_config(args.scoring)
    metrics = score_lists(args.embeddings, dict(args.trials), args.out, top_n=settings.top_n)
    for name, m in metrics.items():
        if isinstance(m, dict):
            print(f"{name}: " + ", ".join(f"{b} EER {m[b]['eer']:.2%}" for b in m if isinstance(m[b], dict)))
    return 0


def cmd_intervals(args: argparse.Namespace) -> int:
    from svbench.uncertainty.score_intervals import UncertaintySettings, bootstrap_job

    summary = bootstrap_job(dict(args.scores), args.manifest, args.out, UncertaintySettings.from_config(args.settings))
    for name, backends in summary.items():
        if isinstance(backends, dict):
            for backend, m in backends.items():
                eer = m["eer"]
                print(f"{name} {backend}: EER {eer['value']:.2%} [{eer['low']:.2%}, {eer['high']:.2%}]")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the inference commands to ``svbench``."""
    s = sub.add_parser("embed", help="embeddings of the evaluation set and the training mean/cohort")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--test-features", type=Path, required=True)
    s.add_argument("--test-manifest", type=Path, required=True)
    s.add_argument("--train-features", type=Path, required=True)
    s.add_argument("--train-manifest", type=Path, required=True)
    s.add_argument("--embedding", type=json_object, default={},
                   help='the config\'s embedding block as JSON: {"crop_frames": 200, "device": "auto"}')
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_embed)

    s = sub.add_parser("score", help="cosine and AS-norm scores and metrics for trial lists")
    s.add_argument("--embeddings", type=Path, required=True)
    s.add_argument("--trials", type=named_path, nargs="+", required=True, metavar="NAME=PATH")
    s.add_argument("--scoring", type=json_object, default={},
                   help='the config\'s scoring block as JSON: {"top_n": 300}')
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("intervals", help="speaker-bootstrap replicates and intervals of one job's scores")
    s.add_argument("--scores", type=named_path, nargs="+", required=True, metavar="NAME=PATH",
                   help="the score files of svbench score, by trial list")
    s.add_argument("--manifest", type=Path, required=True, help="the evaluation manifest (utterance -> speaker)")
    s.add_argument("--settings", type=json_object, default={}, help="the uncertainty block as JSON")
    s.add_argument("--out", type=Path, required=True, help="the replicates (npz); the intervals go beside as .json")
    s.set_defaults(func=cmd_intervals)
