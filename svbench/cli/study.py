"""``svbench study …``, ``svbench predict``, ``svbench arch list``: the study's tables, figures and findings."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from svbench.cli.arguments import json_object
from svbench.errors import UserError
from svbench.layout import SUMMARY, Layout
from svbench.models.spec import MACS_FRAMES


def cmd_study_summary(args: argparse.Namespace) -> int:
    from svbench.study.summary import build_summary

    build_summary(args.results, args.config, args.out)
    return 0


def cmd_study_figures(args: argparse.Namespace) -> int:
    from svbench.study.figures import make_figures

    make_figures(args.summary, args.out, phases=args.phases, results=args.results, by_arch=args.by_arch)
    return 0


def cmd_study_footprint(args: argparse.Namespace) -> int:
    from svbench.study.footprint import write_footprint

    write_footprint(args.results, args.config, args.out, args.energy)
    return 0


def cmd_study_report(args: argparse.Namespace) -> int:
    from svbench.study.report import write_study_report

    write_study_report(args.summary, args.out, model_json=args.model_json, model_table=args.model_csv,
                       pareto=args.pareto, differences=args.differences, findings_rst=args.findings_rst,
                       footprint=args.footprint)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from svbench.models import ArchSpec, preset
    from svbench.study.analysis import predict_training_energy, read_summary

    text = args.arch.strip()
    if text.startswith("{"):
        try:
            spec = ArchSpec.from_dict(json.loads(text), where="--arch")
        except json.JSONDecodeError as exc:
            raise UserError(f"--arch: not valid JSON ({exc})") from None
    else:
        spec = preset(text, args.width)
    summary = read_summary(args.summary)
    p = predict_training_energy(spec, summary, args.epochs, args.samples)
    # the reason the fit gave, never a guessed one: it names the usable architectures and why the others are not
    reason = p["held_out_reason"]
    err = (f"held-out error of the model: mean {p['mean_abs_error']:.0%}, max {p['max_abs_error']:.0%} over "
           f"{p['fitted_archs']} architectures left out one at a time" if reason is None and
           not math.isnan(p["mean_abs_error"]) else f"held-out error: not testable ({reason})")
    label = " (estimated energy)" if "estimated" in p["basis"] else ""
    print(f"{p['arch']}: {p['params_m']:.3f} M params, {p['macs_g']:.3f} GMACs per {p['macs_frames']}-frame input; "
          f"{p['epochs']} epochs x {p['samples_per_epoch']} samples")
    print(f"predicted training energy: {p['predicted_kwh']:.4g} kWh{label}; {err}"
          + ("" if not p["in_fit"] else " (this architecture is in the fit)"))
    # what the fit left out and why; the held-out reason already names unusable architectures
    left = ([] if reason is not None else [f"{a}: {r}" for a, r in p["unusable"].items()]) + list(p["dropped"])
    if left:
        print("left out of the fit: " + "; ".join(left))
    return 0


def cmd_arch_list(args: argparse.Namespace) -> int:
    from svbench.study.grid import arch_table, grid_from_config

    if args.frames < 1:
        raise UserError(f"--frames: must be an integer >= 1, got {args.frames}")
    specs = grid_from_config(args.config)
    print(arch_table(specs, frames=args.frames))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the study commands to ``svbench``."""
    study = sub.add_parser("study", help="summary tables and figures").add_subparsers(dest="study_cmd", required=True)
    s = study.add_parser("summary", help="one row per architecture and seed (CSV, HTML, LaTeX)")
    s.add_argument("--results", type=Path, required=True, help="the results folder the study's inputs lie in")
    s.add_argument("--config", type=json_object, required=True, help="the study config (grid, seeds, carbon) as JSON")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_study_summary)
    s = study.add_parser("figures", help="trade-off figures from the summary")
    s.add_argument("--summary", type=Path, required=True)
    s.add_argument("--phases", type=Path, help="phases.csv of the summary (energy by phase and component)")
    s.add_argument("--results", type=Path, required=True, help="the results folder (traces for the timelines)")
    s.add_argument("--by-arch", type=Path,
                   help="summary_by_arch.csv: its intervals become the error bars (± sd over seeds without)")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_study_figures)
    s = study.add_parser("footprint", help="the whole study's footprint: every measured job and attempt, per step, "
                         "per rule and in total")
    s.add_argument("--results", type=Path, required=True)
    s.add_argument("--energy", type=Path, nargs="+", metavar="ENERGY_CSV",
                   help="the study's jobs, each by its energy.csv (the workflow lists them); without it, every "
                        "energy.csv under RESULTS/energy, a job the study no longer has too")
    s.add_argument("--config", type=json_object, required=True,
                   help="the study config as JSON (carbon, energy, uncertainty)")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_study_footprint)
    s = study.add_parser("report", help="the findings (Pareto front, knee, energy model) as HTML")
    s.add_argument("--summary", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--model-json", type=Path)
    s.add_argument("--model-csv", type=Path)
    s.add_argument("--pareto", type=Path, help="pareto.csv of the summary: Pareto and knee frequencies")
    s.add_argument("--differences", type=Path, help="differences.csv of the summary: what the intervals support")
    s.add_argument("--findings-rst", type=Path, help="the findings as reStructuredText, the report's opening page")
    s.add_argument("--footprint", type=Path, help="footprint.txt of svbench study footprint: the pages open on it")
    s.set_defaults(func=cmd_study_report)

    s = sub.add_parser("predict", help="predicted training energy of an architecture, with the model's error")
    s.add_argument("--arch", required=True, help="a preset name (ResNet34) or a spec as JSON")
    s.add_argument("--width", type=int, help="base width of a preset (its own by default)")
    s.add_argument("--summary", type=Path, default=Path(Layout().study_file(SUMMARY, "csv")))
    s.add_argument("--epochs", type=int, required=True)
    s.add_argument("--samples", type=int, required=True, help="training samples per epoch")
    s.set_defaults(func=cmd_predict)

    arch = sub.add_parser("arch", help="architectures").add_subparsers(dest="arch_cmd", required=True)
    s = arch.add_parser("list", help="the grid of a config with params and MACs")
    s.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    s.add_argument("--frames", type=int, default=MACS_FRAMES, help="input length of the MACs (frames of 10 ms)")
    s.set_defaults(func=cmd_arch_list)
