"""``svbench corpus …`` and ``svbench features …``: corpora and the feature store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from svbench.cli.arguments import json_object
from svbench.errors import UserError
from svbench.typed_config import schema_default


def cmd_corpus_synth(args: argparse.Namespace) -> int:
    from svbench.corpus.config import SyntheticConfig
    from svbench.corpus.synthetic import generate_corpus

    summary = generate_corpus(args.out, SyntheticConfig.from_dict(args.synthetic), progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def cmd_corpus_list(args: argparse.Namespace) -> int:
    from svbench.corpus.voxceleb import list_vox2

    print(json.dumps(list_vox2(args.root, args.out)))
    return 0


def cmd_corpus_convert(args: argparse.Namespace) -> int:
    from svbench.corpus.config import VoxcelebConfig
    from svbench.corpus.convert import convert_batch

    voxceleb = VoxcelebConfig.from_dict(args.voxceleb)
    root = _required_path(voxceleb.vox2_dev, "corpus.voxceleb.vox2_dev")
    print(json.dumps(convert_batch(args.list, root, Path(voxceleb.converted_root), args.batch,
                                   voxceleb.convert.batch_size, args.report, args.workers, voxceleb.convert.ffmpeg)))
    return 0


def cmd_corpus_voxceleb(args: argparse.Namespace) -> int:
    from svbench.corpus.config import CorpusConfig
    from svbench.corpus.voxceleb import build_voxceleb

    corpus = CorpusConfig.from_dict(args.corpus)
    voxceleb = corpus.voxceleb
    trials = {name: Path(path) for name, path in voxceleb.trials.items()}
    summary = build_voxceleb(args.vox2_list, _required_path(voxceleb.vox2_dev, "corpus.voxceleb.vox2_dev"),
                             Path(voxceleb.converted_root), _required_path(voxceleb.vox1, "corpus.voxceleb.vox1"),
                             trials, args.out, corpus.on_bad_audio, args.convert_reports, args.workers)
    print(json.dumps(summary))
    return 0


def _required_path(value: str | None, key: str) -> Path:
    """A path the command cannot do without; unset is a UserError naming the config key."""
    if value is None:
        raise UserError(f"{key}: not set (the VoxCeleb commands need it)")
    return Path(value)


def cmd_features_extract(args: argparse.Namespace) -> int:
    from svbench.features import FeaturesConfig, extract_shard

    features = FeaturesConfig.from_dict(args.features)
    extract_shard(args.manifest, args.out, args.shard, features.shards, features.fbank, progress=not args.quiet)
    return 0


def cmd_features_index(args: argparse.Namespace) -> int:
    from svbench.features import FeaturesConfig, merge_index

    merge_index(args.out, FeaturesConfig.from_dict(args.features).shards)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the corpus commands to ``svbench``."""
    corpus = sub.add_parser("corpus", help="corpora: synthetic speakers, VoxCeleb trees").add_subparsers(
        dest="corpus_cmd", required=True)
    s = corpus.add_parser("synth", help="generate the synthetic corpus (wav, manifests, trial list)")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--synthetic", type=json_object, default={},
                   help="the corpus.synthetic block as JSON (omitted keys take their defaults)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_corpus_synth)
    s = corpus.add_parser("list", help="sorted listing of a VoxCeleb2-dev tree (its m4a files, else its wav files)")
    s.add_argument("--root", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_corpus_list)
    s = corpus.add_parser("convert", help="convert one batch of a listing from m4a to 16 kHz mono wav (ffmpeg)")
    s.add_argument("--list", type=Path, required=True, help="the listing of corpus.voxceleb.vox2_dev")
    s.add_argument("--voxceleb", type=json_object, required=True,
                   help="the corpus.voxceleb block as JSON: vox2_dev, converted_root and convert are used")
    s.add_argument("--batch", type=int, required=True)
    s.add_argument("--report", type=Path, required=True)
    s.add_argument("--workers", type=int, default=schema_default("corpus.voxceleb.convert.threads"),
                   help="ffmpeg processes (the job's threads)")
    s.set_defaults(func=cmd_corpus_convert)
    s = corpus.add_parser("voxceleb", help="manifests, trial lists and bad-audio list from VoxCeleb trees")
    s.add_argument("--vox2-list", type=Path, required=True)
    s.add_argument("--corpus", type=json_object, required=True,
                   help="the corpus block as JSON: on_bad_audio and voxceleb (vox2_dev, vox1, trials, converted_root)")
    s.add_argument("--convert-reports", type=Path, nargs="*", default=[])
    s.add_argument("--workers", type=int, default=schema_default("corpus.voxceleb.check_threads"),
                   help="parallel header checks (the job's threads)")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_corpus_voxceleb)

    feats = sub.add_parser("features", help="log-mel filterbank feature store").add_subparsers(
        dest="features_cmd", required=True)
    s = feats.add_parser("extract", help="compute one shard of a split")
    s.add_argument("--manifest", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--shard", type=int, default=0)
    s.add_argument("--features", type=json_object, default={},
                   help="the features block as JSON: n_mels, shards (omitted keys take their defaults)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_features_extract)
    s = feats.add_parser("index", help="join shard indexes into index.tsv")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--features", type=json_object, default={}, help="the features block as JSON (shards is used)")
    s.set_defaults(func=cmd_features_index)
