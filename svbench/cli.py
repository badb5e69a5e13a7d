"""``svbench <command>``: argument parsing only; every command calls one library function."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from svbench.errors import UserError


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _named_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def cmd_corpus_synth(a: argparse.Namespace) -> int:
    from svbench.corpus.synthetic import generate

    summary = generate(a.out, a.train_speakers, a.test_speakers, a.utts_per_speaker, a.sessions_per_speaker,
                       a.min_seconds, a.max_seconds, a.trials, a.seed, progress=not a.quiet)
    print(json.dumps(summary))
    return 0


def cmd_corpus_list(a: argparse.Namespace) -> int:
    from svbench.corpus.voxceleb import list_vox2

    print(json.dumps(list_vox2(a.root, a.out)))
    return 0


def cmd_corpus_convert(a: argparse.Namespace) -> int:
    from svbench.corpus.convert import convert_batch

    print(json.dumps(convert_batch(a.list, a.root, a.out, a.batch, a.batch_size, a.report, a.workers, a.ffmpeg)))
    return 0


def cmd_corpus_voxceleb(a: argparse.Namespace) -> int:
    from svbench.corpus.voxceleb import build_voxceleb

    summary = build_voxceleb(a.vox2_list, a.vox2_root, a.converted_root, a.vox1_root, dict(a.trials), a.out,
                             a.on_bad_audio, a.convert_reports, a.workers)
    print(json.dumps(summary))
    return 0


def cmd_features_extract(a: argparse.Namespace) -> int:
    from svbench.features import FbankConfig, extract_shard

    extract_shard(a.manifest, a.out, a.shard, a.num_shards, FbankConfig(n_mels=a.n_mels), progress=not a.quiet)
    return 0


def cmd_features_index(a: argparse.Namespace) -> int:
    from svbench.features import merge_index

    merge_index(a.out, a.num_shards)
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from svbench.models import ArchSpec
    from svbench.training import Preempted, Recipe, train

    spec = ArchSpec.from_dict(a.arch, where="--arch")
    recipe = Recipe.from_dict(a.recipe)  # errors name the config key (training.batch_size), as in the workflow
    try:
        train(a.features, a.manifest, spec, recipe, a.out, seed=a.seed)
    except Preempted as exc:
        logging.getLogger("svbench").warning("%s", exc)
        return 143  # as if terminated: the scheduler retries and training resumes
    return 0


def cmd_embed(a: argparse.Namespace) -> int:
    from svbench.embedding import embed

    embed(a.model, a.test_features, a.test_manifest, a.train_features, a.train_manifest, a.out,
          crop_frames=a.crop_frames, seed=a.seed, device=a.device)
    return 0


def cmd_score(a: argparse.Namespace) -> int:
    from svbench.scoring import score_lists

    metrics = score_lists(a.embeddings, dict(a.trials), a.out, top_n=a.top_n)
    for name, m in metrics.items():
        if isinstance(m, dict):
            print(f"{name}: " + ", ".join(f"{b} EER {m[b]['eer']:.2%}" for b in m if isinstance(m[b], dict)))
    return 0


def cmd_monitor(a: argparse.Namespace) -> int:
    from svbench.energy.monitor import read_energy_config, run_monitored

    command = a.command[1:] if a.command and a.command[0] == "--" else a.command
    config = read_energy_config(a.config) if a.config else {}
    return run_monitored(a.out, command, config, baseline_s=a.baseline)


def cmd_energy_join(a: argparse.Namespace) -> int:
    import pandas as pd

    from svbench.energy.carbon import Intensity
    from svbench.energy.join import join

    intensity = Intensity.from_config(a.intensity) if a.intensity else None
    frame = join(a.trace, a.markers, a.out, intensity)
    job = frame[frame["phase"] == "job"]
    for _, row in job.iterrows():
        if row["component"] == "slurm_crosscheck":
            value = "not available" if pd.isna(row["energy_j"]) else f"{row['energy_j']:.1f} J"
            print(f"SLURM ConsumedEnergy (cross-check, attempt {row['attempt']}): {value}")
            continue
        label = " (estimated)" if row["estimated"] else ""
        notes = f" [{row['notes']}]" if row["notes"] else ""
        print(f"attempt {row['attempt']} {row['sensor']}/{row['channel']}: {row['energy_j']:.1f} J{label}, "
              f"coverage {row['coverage']:.0%}{notes}")
    return 0


def cmd_study_summary(a: argparse.Namespace) -> int:
    from svbench.study.summary import build_summary

    build_summary(a.results, a.config, a.out)
    return 0


def cmd_study_figures(a: argparse.Namespace) -> int:
    from svbench.study.figures import make_figures

    make_figures(a.summary, a.out, phases=a.phases, results=a.results)
    return 0


def cmd_study_report(a: argparse.Namespace) -> int:
    from svbench.study.report import write_study_report

    write_study_report(a.summary, a.out, model_json=a.model_json, model_table=a.model_csv)
    return 0


def cmd_energy_emissions(a: argparse.Namespace) -> int:
    from svbench.energy.emissions import write_emissions

    write_emissions(a.energy, a.sidecar, a.carbon, a.project, a.out, a.svbench_out)
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    import pandas as pd

    from svbench.models import ArchSpec, preset
    from svbench.study.analysis import predict_training_energy

    text = a.arch.strip()
    if text.startswith("{"):
        try:
            spec = ArchSpec.from_dict(json.loads(text), where="--arch")
        except json.JSONDecodeError as exc:
            raise UserError(f"--arch: not valid JSON ({exc})") from None
    else:
        spec = preset(text, a.width)
    p = predict_training_energy(spec, pd.read_csv(a.summary), a.epochs, a.samples)
    err = (f"held-out error of the model: mean {p['mean_abs_error']:.0%}, max {p['max_abs_error']:.0%} over "
           f"{p['fitted_archs']} architectures left out one at a time" if p["mean_abs_error"] == p["mean_abs_error"]
           else "held-out error: not testable (the fit needs at least 3 architectures)")
    label = " (estimated energy)" if "estimated" in p["basis"] else ""
    print(f"{p['arch']}: {p['params_m']:.3f} M params, {p['macs_g']:.3f} GMACs per {p['macs_frames']}-frame input; "
          f"{p['epochs']} epochs x {p['samples_per_epoch']} samples")
    print(f"predicted training energy: {p['predicted_kwh']:.4g} kWh{label}; {err}"
          + ("" if not p["in_fit"] else " (this architecture is in the fit)"))
    return 0


def cmd_arch_list(a: argparse.Namespace) -> int:
    from svbench.errors import UserError
    from svbench.study.grid import arch_table, grid_from_config

    if a.frames < 1:
        raise UserError(f"--frames: must be an integer >= 1, got {a.frames}")
    specs = grid_from_config(a.config)
    print(arch_table(specs, frames=a.frames))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="svbench", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command_name", required=True)

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
    s.add_argument("--trials", type=_named_path, nargs="+", required=True, metavar="NAME=PATH")
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

    s = sub.add_parser("train", help="train one architecture (resumes from its checkpoint)")
    s.add_argument("--features", type=Path, required=True)
    s.add_argument("--manifest", type=Path, required=True)
    s.add_argument("--arch", type=_json, required=True, help="architecture spec as JSON")
    s.add_argument("--recipe", type=_json, default={}, help="training recipe as JSON")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_train)

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
    s.add_argument("--trials", type=_named_path, nargs="+", required=True, metavar="NAME=PATH")
    s.add_argument("--top-n", type=int, default=300)
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("monitor", help="run a command beside the sensor sidecar: monitor --out DIR -- CMD ...")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--config", type=Path, help="the energy config (sensors, intervals) as a JSON or YAML file: "
                   "a file, not an argument, because every user sees argv in ps")
    s.add_argument("--baseline", type=float, default=0.0, help="seconds of idle baseline before the command")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_monitor)

    energy = sub.add_parser("energy", help="energy traces").add_subparsers(dest="energy_cmd", required=True)
    s = energy.add_parser("join", help="energy per phase from a trace and its markers")
    s.add_argument("--trace", type=Path, required=True)
    s.add_argument("--markers", type=Path, required=True)
    s.add_argument("--intensity", type=_json, help="carbon.intensity as JSON: with a series, every row's intensity "
                   "is weighted by the energy of its samples")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_energy_join)
    s = energy.add_parser("emissions", help="CodeCarbon's emissions.csv (and emissions_svbench.csv) from energy.csv")
    s.add_argument("--energy", type=Path, required=True)
    s.add_argument("--sidecar", type=Path, help="the job's sidecar.json (node, GPUs)")
    s.add_argument("--carbon", type=_json, required=True, help="the carbon config (pue, intensity) as JSON")
    s.add_argument("--project", default="svbench", help="CodeCarbon's project_name")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--svbench-out", type=Path,
                   help="svbench's own fields (run_id, energy_basis); default: emissions_svbench.csv beside --out")
    s.set_defaults(func=cmd_energy_emissions)

    study = sub.add_parser("study", help="summary tables and figures").add_subparsers(dest="study_cmd", required=True)
    s = study.add_parser("summary", help="one row per architecture and seed (CSV, HTML, LaTeX)")
    s.add_argument("--results", type=Path, default=Path("results"))
    s.add_argument("--config", type=_json, required=True, help="the study config (grid, seeds, carbon) as JSON")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_study_summary)
    s = study.add_parser("figures", help="trade-off figures from the summary")
    s.add_argument("--summary", type=Path, required=True)
    s.add_argument("--phases", type=Path, help="phases.csv of the summary (energy by phase and component)")
    s.add_argument("--results", type=Path, default=Path("results"), help="results folder (traces for timelines)")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_study_figures)
    s = study.add_parser("report", help="the findings (Pareto front, knee, energy model) as HTML")
    s.add_argument("--summary", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--model-json", type=Path)
    s.add_argument("--model-csv", type=Path)
    s.set_defaults(func=cmd_study_report)

    s = sub.add_parser("predict", help="predicted training energy of an architecture, with the model's error")
    s.add_argument("--arch", required=True, help="a preset name (ResNet34) or a spec as JSON")
    s.add_argument("--width", type=int, default=32, help="base width of a preset")
    s.add_argument("--summary", type=Path, default=Path("results/study/summary.csv"))
    s.add_argument("--epochs", type=int, required=True)
    s.add_argument("--samples", type=int, required=True, help="training samples per epoch")
    s.set_defaults(func=cmd_predict)

    arch = sub.add_parser("arch", help="architectures").add_subparsers(dest="arch_cmd", required=True)
    s = arch.add_parser("list", help="the grid of a config with params and MACs")
    s.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    s.add_argument("--frames", type=int, default=200)
    s.set_defaults(func=cmd_arch_list)
    return p


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


if __name__ == "__main__":
    main()
