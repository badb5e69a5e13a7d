"""The five parts of ``bench/gpu_check.sh``, one per call: ``python bench/gpu_parts.py PART --out DIR [--dry]``.

Each part writes ``DIR/PART/result.json`` (:class:`gpu_report.Result`: its figures against their goals, notes
and a verdict), also when it fails, with what it measured so far; ``bench/gpu_report.py report`` gathers them.

- ``nvml``: ``svbench monitor`` (NVML read every 25 ms) around ``bench/gpu_burn.py`` (long burns, single short
  bursts, the repeat-and-delay set of Yang et al. SC'24), joined, compared by ``bench/nvml_compare.py``:
  counter against the instant-power integral on long phases (goal within 5 %), both against the known load
  on short bursts (goal: the repeat-and-delay counter total within 10 %), and which reading to trust.
- ``amp``: ResNet34 training steps, AMP bf16 + channels-last against fp32, one process (goal ≥ 2×).
- ``util``: ResNet34 trained from a generated memory-mapped feature store through the DataLoader with the
  VoxCeleb config's ``num_workers``, under ``svbench monitor``: the GPU utilisation NVML reports (goal ≥ 90 %).
- ``overhead``: training throughput bare, under ``svbench monitor`` (every sensor it finds), bare again:
  the sidecar's cost on a busy node (goal < 2 %).
- ``demo``: the demo config's training and embedding jobs of one architecture, run by Snakemake on the GPU
  under ``svbench monitor``: their wall time and GPU energy.

``--dry`` runs every part at toy scale on the CPU against the fake NVML that ``gpu_report.py setup --dry`` put
first on ``PYTHONPATH`` (the demo part only plans its jobs): it tests the plumbing, in CI, and judges no goal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from gpu_report import Goal, Result  # noqa: E402

PY = sys.executable
WITHIN_5 = Goal("within 5 %", lambda v: v < 5)
WITHIN_10 = Goal("within 10 %", lambda v: v < 10)
AT_LEAST_2X = Goal("≥ 2×", lambda v: v >= 2.0)
AT_LEAST_90 = Goal("≥ 90 %", lambda v: v >= 90.0)
BELOW_2 = Goal("< 2 %", lambda v: v < 2)


def pct(fraction: float | None) -> float | None:
    """A fraction as percent; None stays None (not measured)."""
    return None if fraction is None else 100 * fraction


def off(ratio: float | None) -> float | None:
    """How far a ratio is from 1, in percent."""
    return None if ratio is None else 100 * abs(ratio - 1)


def run(cmd: list, log: Path, timeout: float | None = None, env: dict | None = None) -> int:
    """Run ``cmd`` with its output appended to ``log``; its exit status (124 past ``timeout``)."""
    with open(log, "a") as out:
        out.write("$ " + " ".join(map(str, cmd)) + "\n")
        out.flush()
        try:
            return subprocess.run([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                                  env=env, cwd=ROOT).returncode
        except subprocess.TimeoutExpired:
            return 124


def monitored(out: Path, config: dict | None, baseline: float, cmd: list) -> list:
    """``svbench monitor`` around ``cmd``; ``config`` (the energy config) goes to a file, never to argv."""
    line = [PY, "-m", "svbench.cli", "monitor", "--out", out, "--baseline", baseline]
    if config is not None:
        path = out.parent / f"{out.name}.energy.json"
        path.write_text(json.dumps(config))
        line += ["--config", path]
    return line + ["--", *cmd]


def nvml_only(interval_s: float, context_s: float) -> dict:
    return {"sensors": ["nvml"], "nvml": {"interval_s": interval_s, "context_interval_s": context_s},
            "estimate": {"enabled": False}}


def device_of(dry: bool) -> str:
    return "cpu" if dry else "cuda"


# --- 1. NVML -------------------------------------------------------------------------------------------

def part_nvml(r: Result, dry: bool) -> None:
    import nvml_compare

    run_dir, counts = r.out_dir / "run", r.out_dir / "burn_counts.json"
    scale = (["--size", "64", "--warmup-s", "0.1", "--longs", "2", "--long-s", "1.0", "--pause-s", "0.2",
              "--short-s", "0.05", "--shorts", "3", "--repeats", "8", "--stagger", "4"] if dry else
             ["--longs", "3", "--long-s", "15", "--shorts", "10", "--repeats", "40", "--stagger", "8"])
    long_s = 0.8 if dry else 5.0
    burn = [PY, BENCH / "gpu_burn.py", "--device", device_of(dry), "--counts", counts, *scale]
    rc = run(monitored(run_dir, nvml_only(0.025, 0.1), 1 if dry else 5, burn), r.out_dir / "log.txt")
    if rc:
        raise RuntimeError(f"the monitored gpu_burn run exited with status {rc}")
    rc = run([PY, "-m", "svbench.cli", "energy", "join", "--dir", run_dir, "--out", run_dir / "energy.csv"],
             r.out_dir / "log.txt")
    if rc:
        raise RuntimeError(f"svbench energy join exited with status {rc}")
    s = nvml_compare.summary(run_dir, counts, long_s)
    (r.out_dir / "summary.json").write_text(json.dumps(s, indent=1, default=str))
    r.figure("NVML read interval (median)", s["read_interval_ms"], "ms")
    r.figure(f"counter vs instant-power integral, worst phase ≥ {long_s:g} s", pct(s["worst_long"]), "%",
             WITHIN_5, missing="no long phase with both readings")
    r.figure("1-s average power integral vs counter, worst long phase", pct(s["worst_long_avg"]), "%",
             missing="no power_avg readings")
    load = s["known_load"]
    r.figure("energy per matmul (counter, long burns)", load["j_per_matmul"], "J")
    single, repeat = load.get("single") or {}, load.get("repeat") or {}
    r.figure("single bursts: counter spread (CV)", pct((single.get("counter") or {}).get("cv")), "%")
    r.figure("single bursts: instant-power spread (CV)", pct((single.get("instant") or {}).get("cv")), "%")
    r.figure("repeat-and-delay: counter total off the known load", off((repeat.get("counter") or {}).get("total")),
             "%", WITHIN_10, missing="no repeat-and-delay bursts")
    r.figure("repeat-and-delay: instant-power total off the known load",
             off((repeat.get("instant") or {}).get("total")), "%")
    r.verdict = s["advice"]


# --- 2. AMP --------------------------------------------------------------------------------------------

def part_amp(r: Result, dry: bool) -> None:
    import torch
    import train_step

    device = torch.device(device_of(dry))
    batch, frames, steps, warmup, width = (2, 40, 1, 1, 4) if dry else (64, 200, 30, 10, 32)
    rows = train_step.precision_rates(device, batch, frames, steps, warmup, width=width)
    (r.out_dir / "rates.json").write_text(json.dumps(rows, indent=1))
    for row in rows:
        r.figure(f"ResNet34 (m = {width}, batch {batch}) {row['config']}", row["segments_per_s"], "segments/s")
    r.figure(f"{rows[2]['config']} / fp32", rows[2]["segments_per_s"] / rows[0]["segments_per_s"], "×", AT_LEAST_2X)
    r.figure(f"{rows[2]['config']} / fp32 strict", rows[2]["segments_per_s"] / rows[1]["segments_per_s"], "×")


# --- 3. utilisation from the feature store ---------------------------------------------------------------

def configured_workers() -> int:
    import yaml

    config = yaml.safe_load((ROOT / "config" / "voxceleb.yaml").read_text())
    return int(config["training"]["num_workers"])


def train_from_store(seconds: float, workers: int, batch: int, frames: int, width: int, device_name: str) -> None:
    """ResNet34 steps on batches the DataLoader reads from a generated store, for ``seconds``, in phase
    ``train`` (run under ``svbench monitor``); prints the segments/s."""
    import tempfile

    import numpy as np
    import torch
    import train_step
    from torch.utils.data import DataLoader

    from svbench.instrument.markers import phase
    from svbench.training import CropDataset, epoch_order

    device = torch.device(device_name)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    with tempfile.TemporaryDirectory() as tmp:
        store, ids = train_step.make_store(Path(tmp) / "features", 400, np.random.default_rng(0))
        dataset = CropDataset(store, ids, [k % 100 for k in range(len(ids))], frames, seed=0)
        order = epoch_order(len(ids), len(ids) * 200, seed=0, epoch=0)
        batches = [order[k: k + batch] for k in range(0, len(order), batch)]
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=device.type == "cuda",
                            persistent_workers=workers > 0)
        net, opt, scaler = train_step.build_parts("ResNet34", device, width)
        got, it = 0, iter(loader)
        for _ in range(3):  # worker start-up and cuDNN autotuning outside the measured phase
            x, y = next(it)
            train_step.train_step(net, opt, scaler, x.to(device, non_blocking=True), y.to(device) % 100)
        with phase("train", sync=sync):
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                x, y = next(it)
                train_step.train_step(net, opt, scaler, x.to(device, non_blocking=True), y.to(device) % 100)
                got += len(x)
        print(f"train_from_store: {got / (time.monotonic() - t0):.1f} segments/s, {workers} workers", flush=True)


def utilisation_in(run_dir: Path, name: str) -> list[float]:
    """NVML utilisation readings (%) inside the phase ``name`` of a monitored run."""
    from svbench.instrument.markers import phases, read_markers
    from svbench.instrument.nodes import MARKERS, trace_path
    from svbench.instrument.trace import read_trace

    found = [p for p in phases(read_markers(run_dir / MARKERS)) if p.name == name and p.complete]
    if not found:
        return []
    t = read_trace(trace_path(run_dir))
    rows = t[(t["sensor"] == "nvml") & (t["quantity"] == "utilisation")]
    inside = rows[(rows["t_mono_ns"] >= found[0].start_mono_ns) & (rows["t_mono_ns"] <= found[0].stop_mono_ns)]
    return [float(v) for v in inside["value"]]


def part_util(r: Result, dry: bool) -> None:
    workers = 0 if dry else configured_workers()
    seconds, batch, frames, width = (2.0, 2, 40, 4) if dry else (30.0, 128, 200, 32)
    cmd = [PY, BENCH / "gpu_parts.py", "_train_from_store", "--seconds", seconds, "--workers", workers,
           "--batch", batch, "--frames", frames, "--width", width, "--device", device_of(dry)]
    run_dir = r.out_dir / "run"
    rc = run(monitored(run_dir, nvml_only(0.1, 0.5), 1, cmd), r.out_dir / "log.txt")
    if rc:
        raise RuntimeError(f"the monitored training from the feature store exited with status {rc}")
    values = utilisation_in(run_dir, "train")
    r.figure("data-loader workers (config/voxceleb.yaml training.num_workers)" if not dry else "data-loader workers",
             workers)
    mean = sum(values) / len(values) if values else None
    r.figure("GPU utilisation while training (mean of NVML readings)", mean, "%", AT_LEAST_90,
             missing="no utilisation readings inside the training phase")
    r.figure("utilisation readings", len(values))
    rate = [ln for ln in (r.out_dir / "log.txt").read_text().splitlines() if ln.startswith("train_from_store:")]
    if rate:
        r.notes.append(rate[-1])


# --- 4. sidecar overhead -----------------------------------------------------------------------------------

def steps_rate(log: Path) -> float | None:
    """Steps per second from a ``train_step.py --steady-s`` log (``ready`` line, then one line per step end)."""
    lines = log.read_text().split()
    if "ready" not in lines:
        return None
    t0 = int(lines[lines.index("ready") + 1])
    ends = [int(x) for x in lines[lines.index("batch") + 2:]]
    return len(ends) / ((ends[-1] - t0) / 1e9) if ends and ends[-1] > t0 else None


def part_overhead(r: Result, dry: bool) -> None:
    seconds, batch, frames, width = (1.0, 2, 40, 4) if dry else (15.0, 64, 200, 32)
    rates = {}
    # bare, monitored, bare again: the drift between the bare runs says how much of a difference is noise
    for label in ("bare", "monitored") if dry else ("bare", "monitored", "bare again"):
        log = r.out_dir / f"steps_{label.replace(' ', '_')}.log"
        cmd = [PY, BENCH / "train_step.py", "--device", device_of(dry), "--steady-s", seconds, "--batch", batch,
               "--frames", frames, "--width", width, "--steps-log", log]
        if label == "monitored":  # every sensor the node has, at the study's default intervals
            cmd = monitored(r.out_dir / "run", None, 0, cmd)
        rc = run(cmd, r.out_dir / "log.txt")
        if rc:
            raise RuntimeError(f"the {label} training run exited with status {rc}")
        rates[label] = steps_rate(log)
        r.figure(f"training steps/s, {label}", rates[label], "steps/s")
    bare = [v for k, v in rates.items() if k != "monitored" and v]
    overhead = 1 - rates["monitored"] / (sum(bare) / len(bare)) if bare and rates["monitored"] else None
    r.figure("sidecar overhead (1 − monitored / mean of bare)", pct(overhead), "%", BELOW_2)
    if bare and len(bare) == 2:
        r.figure("bare-to-bare drift", pct(abs(bare[0] - bare[1]) / max(bare)), "%",
                 note="an overhead below this is within run-to-run noise")


# --- 5. the demo on the GPU -------------------------------------------------------------------------------

def part_demo(r: Result, dry: bool) -> None:
    import pandas as pd
    import yaml

    from svbench.layout import Layout

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    arch, seed = config["grid"][0]["name"], int(config["seeds"][0])
    work = r.out_dir / "work"
    work.mkdir(exist_ok=True)
    layout = Layout()
    targets = [layout.energy("train", arch, seed), layout.energy("embed", arch, seed)]
    cmd = [Path(PY).parent / "snakemake", "--snakefile", ROOT / "Snakefile", "--directory", work, "--configfile",
           ROOT / "config" / "config.yaml", "--cores", "all", *(["-n"] if dry else []), *targets]
    t0 = time.monotonic()
    rc = run(cmd, r.out_dir / "log.txt")
    r.figure("Snakemake wall time (corpus, features, train, embed of one architecture)", time.monotonic() - t0, "s")
    if rc:
        raise RuntimeError(f"snakemake exited with status {rc}")
    if dry:
        r.notes.append(f"dry mode: planned {', '.join(targets)} (snakemake -n), ran nothing")
        return
    for step, path in zip(("train", "embed"), targets, strict=True):
        energy = pd.read_csv(work / path)
        job = energy[energy["phase"] == "job"]
        gpu = job[job["component"] == "gpu"]
        r.figure(f"{step}: job seconds", float(job["seconds"].max()) if len(job) else None, "s")
        r.figure(f"{step}: GPU energy (NVML)", float(gpu["energy_j"].sum()) if len(gpu) else None, "J",
                 missing="no NVML channel in the job's energy")
        r.figure(f"{step}: measured, not estimated", bool(len(job)) and not job["estimated"].astype(bool).any())


PARTS = {"nvml": part_nvml, "amp": part_amp, "util": part_util, "overhead": part_overhead, "demo": part_demo}


def run_part(part: str, out: Path, dry: bool) -> int:
    r = Result(part, out / part, dry)
    r.out_dir.mkdir(parents=True, exist_ok=True)
    r.write()
    t0 = time.monotonic()
    beat = threading.Event()

    def progress() -> None:  # a line every 30 s: on a GPU a part runs for minutes
        while not beat.wait(30):
            print(f"gpu_check: {part} running, {time.monotonic() - t0:.0f} s", flush=True)

    threading.Thread(target=progress, daemon=True).start()
    try:
        PARTS[part](r, dry)
        r.status = "ok"
    except Exception as exc:  # reported in the part's result, with what it measured so far
        r.status, r.error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        beat.set()
        r.seconds = time.monotonic() - t0
        r.write()
    print(f"gpu_check: {part} {r.status} in {r.seconds:.0f} s" + (f" ({r.error})" if r.error else ""), flush=True)
    return 0 if r.status == "ok" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=[*PARTS, "_train_from_store"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--dry", action="store_true", default=os.environ.get("SVBENCH_GPU_CHECK_DRY") == "1")
    for name, kind in (("seconds", float), ("workers", int), ("batch", int), ("frames", int), ("width", int)):
        parser.add_argument(f"--{name}", type=kind)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    if args.part == "_train_from_store":
        train_from_store(args.seconds, args.workers, args.batch, args.frames, args.width, args.device)
        return 0
    if args.out is None:
        parser.error("--out is required")
    return run_part(args.part, args.out, args.dry)


if __name__ == "__main__":
    sys.exit(main())
