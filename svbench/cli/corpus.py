"""``svbench corpus …`` and ``svbench features …``: corpora and the feature store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from svbench.cli.arguments import named_path


def cmd_corpus_synth(args: argparse.Namespace) -> int:
    from svbench.corpus.synthetic import generate

    summary = generate(args.out, args.train_speakers, args.test_speakers, args.utts_per_speaker,
                       args.sessions_per_speaker, args.min_seconds, args.max_seconds, args.trials, args.seed,
                       progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def cmd_corpus_list(args: argparse.Namespace) -> int:
    from svbench.corpus.voxceleb import list_vox2

    print(json.dumps(list_vox2(args.root, args.out)))
    return 0


def cmd_corpus_convert(args: argparse.Namespace) -> int:
    from svbench.corpus.convert import convert_batch

    print(json.dumps(convert_batch(args.list, args.root, args.out, args.batch, args.batch_size, args.report,
                                   args.workers, args.ffmpeg)))
    return 0


def cmd_corpus_voxceleb(args: argparse.Namespace) -> int:
    from svbench.corpus.voxceleb import build_voxceleb

    summary = build_voxceleb(args.vox2_list, args.vox2_root, args.converted_root, args.vox1_root, dict(args.trials),
                             args.out, args.on_bad_audio, args.convert_reports, args.workers)
    print(json.dumps(summary))
    return 0


def cmd_features_extract(args: argparse.Namespace) -> int:
    from svbench.features import FbankConfig, extract_shard

    extract_shard(args.manifest, args.out, args.shard, args.num_shards, FbankConfig(n_mels=args.n_mels),
                  progress=not args.quiet)
    return 0


def cmd_features_index(args: argparse.Namespace) -> int:
    from svbench.features import merge_index

    merge_index(args.out, args.num_shards)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the corpus commands to ``svbench``."""
    corpus = sub.add_parser("corpus", help="corpora: synthetic speakers, VoxCeleb trees").add_subparsers(
        dest="corpus_cmd", required=True)
    s = corpus.add_parser("synth", help="generate the synthetic corpus (wav, manifests, trial list)")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--train-speakers", type=int, default=48)
    s.add_argument("--test-speakers", type=int, default=16)
    s.add_argument("--utts-per-speaker", type=int, default=12)
    s.add_argument("--sessions-per-speaker", type=int, default=3)
    s.add_argument("--min-seconds", type=float, default=2.0)
    s.add_argument("--max-seconds", type=float, default=4.0)
    s.add_argument("--trials", type=int, default=2000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_corpus_synth)
    s = corpus.add_parser("list", help="sorted listing of a VoxCeleb2-dev tree (its m4a files, else its wav files)")
    s.add_argument("--root", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_corpus_list)
    s = corpus.add_parser("convert", help="convert one batch of a listing from m4a to 16 kHz mono wav (ffmpeg)")
    s.add_argument("--list", type=Path, required=True)
    s.add_argument("--root", type=Path, required=True, help="the tree the listing is relative to")
    s.add_argument("--out", type=Path, required=True, help="where the wav tree goes")
    s.add_argument("--batch", type=int, required=True)
    s.add_argument("--batch-size", type=int, required=True)
    s.add_argument("--report", type=Path, required=True)
    s.add_argument("--workers", type=int, default=4)
    s.add_argument("--ffmpeg", default="ffmpeg")
    s.set_defaults(func=cmd_corpus_convert)
    s = corpus.add_parser("voxceleb", help="manifests, trial lists and bad-audio list from VoxCeleb trees")
    s.add_argument("--vox2-list", type=Path, required=True)
    s.add_argument("--vox2-root", type=Path, required=True)
    s.add_argument("--converted-root", type=Path, required=True)
    s.add_argument("--vox1-root", type=Path, required=True)
    s.add_argument("--trials", type=named_path, nargs="+", required=True, metavar="NAME=PATH")
    s.add_argument("--on-bad-audio", choices=["stop", "skip"], default="stop")
    s.add_argument("--convert-reports", type=Path, nargs="*", default=[])
    s.add_argument("--workers", type=int, default=8)
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_corpus_voxceleb)

    feats = sub.add_parser("features", help="log-mel filterbank feature store").add_subparsers(
        dest="features_cmd", required=True)
    s = feats.add_parser("extract", help="compute one shard of a split")
    s.add_argument("--manifest", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--shard", type=int, default=0)
    s.add_argument("--num-shards", type=int, default=1)
    s.add_argument("--n-mels", type=int, default=80)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_features_extract)
    s = feats.add_parser("index", help="join shard indexes into index.tsv")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--num-shards", type=int, default=1)
    s.set_defaults(func=cmd_features_index)
