"""``svbench monitor`` and ``svbench energy …``: measuring a command and joining its trace."""

from __future__ import annotations

import argparse
from pathlib import Path

from svbench.cli.arguments import json_object


def cmd_monitor(args: argparse.Namespace) -> int:
    from svbench.instrument.monitor import read_energy_config, run_monitored

    command = args.command[1:] if args.command and args.command[0] == "--" else args.command
    config = read_energy_config(args.config) if args.config else None
    return run_monitored(args.out, command, config, baseline_s=args.baseline, nodes=args.nodes,
                         node_rank=args.node_rank)


def cmd_energy_join(args: argparse.Namespace) -> int:
    import pandas as pd

    from svbench.energy import Intensity, join_nodes

    intensity = Intensity.from_config(args.intensity) if args.intensity else None
    frame = join_nodes(args.dir, args.nodes, args.out, intensity)
    job = frame[frame["phase"] == "job"]
    for _, row in job.iterrows():
        if row["component"] == "job_total":
            if args.nodes > 1:
                notes = f" [{row['notes']}]" if row["notes"] else ""
                print(f"attempt {row['attempt']} all {args.nodes} nodes: {row['energy_j']:.1f} J{notes}")
            continue
        if row["component"] == "slurm_crosscheck":
            value = "not available" if pd.isna(row["energy_j"]) else f"{row['energy_j']:.1f} J"
            print(f"SLURM ConsumedEnergy (cross-check, attempt {row['attempt']}): {value}")
            continue
        label = " (estimated)" if row["estimated"] else ""
        notes = f" [{row['notes']}]" if row["notes"] else ""
        node = f"{row['node']} " if args.nodes > 1 else ""
        print(f"attempt {row['attempt']} {node}{row['sensor']}/{row['channel']}: {row['energy_j']:.1f} J{label}, "
              f"coverage {row['coverage']:.0%}{notes}")
    return 0


def cmd_energy_emissions(args: argparse.Namespace) -> int:
    from svbench.energy import write_emissions

    write_emissions(args.energy, args.sidecar, args.carbon, args.project, args.out, args.svbench_out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the energy commands to ``svbench``."""
    s = sub.add_parser("monitor", help="run a command beside the sensor sidecar: monitor --out DIR -- CMD ...")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--config", type=Path, help="the energy config (sensors, intervals) as a JSON or YAML file: "
                   "a file, not an argument, because every user sees argv in ps")
    s.add_argument("--baseline", type=float, help="seconds of idle baseline before the command (default: the "
                   "config's baseline_s, else 0)")
    s.add_argument("--nodes", type=int, default=1, help="nodes of the job: with N > 1, one monitor runs on each "
                   "node and writes to OUT/node<K>")
    s.add_argument("--node-rank", type=int, help="this node's rank K in the job (default: $SLURM_NODEID)")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_monitor)

    energy = sub.add_parser("energy", help="energy traces").add_subparsers(dest="energy_cmd", required=True)
    s = energy.add_parser("join", help="energy per phase and node from a job's traces and markers")
    s.add_argument("--dir", type=Path, required=True, help="the job's energy folder (what svbench monitor --out got)")
    s.add_argument("--nodes", type=int, default=1, help="nodes of the job: their folders DIR/node<K> are each joined "
                   "and summed; a node without a trace makes the sums partial")
    s.add_argument("--intensity", type=json_object, help="carbon.intensity as JSON: with a series, every row's "
                   "intensity is weighted by the energy of its samples")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=cmd_energy_join)
    s = energy.add_parser("emissions", help="CodeCarbon's emissions.csv (and emissions_svbench.csv) from energy.csv")
    s.add_argument("--energy", type=Path, required=True)
    s.add_argument("--sidecar", type=Path, help="the job's sidecar.json (node, GPUs)")
    s.add_argument("--carbon", type=json_object, required=True, help="the carbon config (pue, intensity) as JSON")
    s.add_argument("--project", default="svbench", help="CodeCarbon's project_name")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--svbench-out", type=Path,
                   help="svbench's own fields (run_id, energy_basis); default: emissions_svbench.csv beside --out")
    s.set_defaults(func=cmd_energy_emissions)
