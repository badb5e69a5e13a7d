"""Energy join at cluster scale: time and peak memory against the trace's length.

``python bench/join.py [--hours 2 6 12] [--gpus 4]`` writes a trace as the sidecar would at the default
intervals on a GPU node (NVML every 0.1 s: energy + instant power per GPU, power_avg/utilisation/memory
every 1 s; RAPL package + DRAM of two sockets every 0.5 s; IPMI every 2 s), with markers for one epoch
per 5 minutes, then runs ``svbench energy join`` on it in a fresh process and reports wall time and peak
resident memory. The baseline, measured in the same run, is ``pandas.read_csv`` of the whole trace in one
go (what reading it takes before any join, and what the join did before it streamed). The timeline
figures' reader (``svbench.study.figures.binned_power``) is timed too.

``python bench/join.py --hours 72 --nodes 1 2 4`` instead joins a job on 1, 2 and 4 such nodes
(``svbench.energy.node_join.join_nodes``: each node on its own, then their sums), each node's folder holding
the same trace (a hard link: the cost is the join's, not the disk's) and markers: time should grow as N times
one node's, and peak memory stay flat in N. The baseline is the 1-node join of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from svbench.instrument.nodes import LEGACY_TRACE, MARKERS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
T0_WALL = 1_760_000_000 * 10**9
T0_MONO = 5_000 * 10**9
EPOCH_S = 300.0


def _block(t: np.ndarray, sensor: str, channel: str, quantity: str, value: np.ndarray, unit: str,
           component: str) -> list[str]:
    wall, mono = T0_WALL + (t * 1e9).astype(np.int64), T0_MONO + (t * 1e9).astype(np.int64)
    fixed_a, fixed_b = f",{sensor},{channel},{quantity},", f",{unit},{component},0\n"
    return [f"{w},{m}{fixed_a}{v!r}{fixed_b}" for w, m, v in zip(wall.tolist(), mono.tolist(), value.tolist(),
                                                                 strict=True)]


def write_trace(path: Path, hours: float, gpus: int) -> int:
    """The trace of ``hours`` of a ``gpus``-GPU node, written in one-minute slices in time order."""
    rows = 0
    with open(path, "w") as f:
        f.write("t_wall_ns,t_mono_ns,sensor,channel,quantity,value,unit,component,estimated\n")
        f.write(f"{T0_WALL},{T0_MONO},sidecar,bench,session,0.0,,other,0\n")
        for minute in range(int(hours * 60)):
            lines: list[tuple[int, str]] = []
            a = minute * 60.0

            def add(period: float, *args: object, base: float = a, out: list = lines) -> None:
                t = np.arange(base, base + 60.0, period)
                for line in _block(t, *args):  # type: ignore[arg-type]
                    out.append((int(line.split(",", 2)[1]), line))

            fast = np.arange(a, a + 60.0, 0.1)
            slow = np.arange(a, a + 60.0, 1.0)
            for g in range(gpus):
                add(0.1, "nvml", f"gpu{g}", "energy", 300.0 * fast, "J", "gpu")
                add(0.1, "nvml", f"gpu{g}", "power", 300.0 + 10 * np.sin(fast), "W", "gpu")
                for quantity, unit, value in (("power_avg", "W", 300.0), ("utilisation", "%", 97.0),
                                              ("memory", "B", 3.2e10)):
                    add(1.0, "nvml", f"gpu{g}", quantity, np.full(len(slow), value), unit, "gpu")
            mid = np.arange(a, a + 60.0, 0.5)
            for s in range(2):
                add(0.5, "rapl", f"package-{s}", "energy", 150.0 * mid, "J", "cpu")
                add(0.5, "rapl", f"dram-{s}", "energy", 20.0 * mid, "J", "dram")
            add(2.0, "ipmi", "node", "power", np.full(30, 1900.0), "W", "node")
            lines.sort(key=lambda x: x[0])
            f.write("".join(line for _, line in lines))
            rows += len(lines)
    return rows


def write_markers(path: Path, hours: float) -> None:
    def rec(event: str, t: float, **kw: object) -> str:
        return json.dumps({"event": event, "t_wall_ns": T0_WALL + int(t * 1e9), "t_mono_ns": T0_MONO + int(t * 1e9),
                           **kw}) + "\n"

    end = hours * 3600
    lines = [rec("begin", 0.5, session="bench", attempt=1)]
    for i, a in enumerate(np.arange(10.0, end - EPOCH_S, EPOCH_S)):
        lines += [rec("start", a, phase="epoch", index=i, pid=1), rec("stop", a + EPOCH_S - 1, phase="epoch",
                                                                        index=i, pid=1, ok=True)]
    lines.append(rec("end", end - 1, status=0))
    path.write_text("".join(lines))


def _measure(code: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``python -c code`` in a fresh process."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    return wall, float(proc.stdout.strip().splitlines()[-1])


PEAK = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"


def node_scaling(folder: Path, hours: float, gpus: int, counts: list[int]) -> None:
    """Join a job of each node count in ``counts``, every node with the same ``hours`` of ``gpus`` GPUs."""
    trace, markers = folder / "node_trace.csv", folder / "node_markers.jsonl"
    t = time.perf_counter()
    rows = write_trace(trace, hours, gpus)
    write_markers(markers, hours)
    print(f"one node: {hours:g} h × {gpus} GPUs, {rows / 1e6:.1f} M rows, {trace.stat().st_size / 1e9:.2f} GB "
          f"(written in {time.perf_counter() - t:.0f} s)", flush=True)
    print(f"{'nodes':>5} {'rows':>8} | {'join s':>7} {'peak MB':>8} | time / 1 node | memory / 1 node")
    base: tuple[float, float] | None = None
    for n in counts:
        job = folder / f"job{n}"
        for k in range(n):
            node = job / f"node{k}" if n > 1 else job
            node.mkdir(parents=True, exist_ok=True)
            if not (node / LEGACY_TRACE).exists():  # the long CSV: bench/trace_size.py compares the two forms
                os.link(trace, node / LEGACY_TRACE)
            (node / MARKERS).write_text(markers.read_text())
        seconds, peak = _measure(
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); from svbench.energy.node_join import join_nodes; "
            f"join_nodes({str(job)!r}, {n}, {str(job / 'energy.csv')!r}); {PEAK}")
        base = base or (seconds, peak)
        print(f"{n:5d} {n * rows / 1e6:7.0f}M | {seconds:7.1f} {peak:8.0f} | {seconds / base[0]:12.2f}x |"
              f" {peak / base[1]:14.2f}x", flush=True)
    trace.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[2.0, 6.0, 12.0])
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument("--nodes", type=int, nargs="+", help="join a job on each of these node counts instead "
                        "(every node --hours[0] of --gpus GPUs)")
    parser.add_argument("--dir", type=Path, help="where to write the traces (default: a temporary folder)")
    args = parser.parse_args(argv)
    folder = args.dir or Path(tempfile.mkdtemp(prefix="svbench-bench-join-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs; traces in {folder}")
    if args.nodes:
        node_scaling(folder, args.hours[0], args.gpus, args.nodes)
        return 0
    print(f"{'hours':>6} {'rows':>10} {'MB':>7} | {'join s':>7} {'join MB':>8} | {'timeline s':>10} {'MB':>6} | "
          f"{'read_csv s':>10} {'MB':>7} | join / read_csv")
    for hours in args.hours:
        trace, markers = folder / f"trace_{hours:g}h.csv", folder / f"markers_{hours:g}h.jsonl"
        rows = write_trace(trace, hours, args.gpus)
        write_markers(markers, hours)
        join_s, join_mb = _measure(
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); from svbench.energy.join import join; "
            f"join({str(trace)!r}, {str(markers)!r}, {str(folder / 'energy.csv')!r}); {PEAK}")
        plot_s, plot_mb = _measure(
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); from svbench.study.figures import binned_power; "
            f"binned_power({str(trace)!r}); {PEAK}")
        read_s, read_mb = _measure(f"import pandas as pd; pd.read_csv({str(trace)!r}); {PEAK}")
        size = trace.stat().st_size / 1e6
        print(f"{hours:6g} {rows:10d} {size:7.0f} | {join_s:7.2f} {join_mb:8.0f} | {plot_s:10.2f} {plot_mb:6.0f} | "
              f"{read_s:10.2f} {read_mb:7.0f} |"
              f" {join_s / read_s:.2f}x time, {join_mb / read_mb:.2f}x memory")
        trace.unlink()
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
