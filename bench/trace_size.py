"""The compact trace against the CSV one: bytes per GPU-hour, join time and peak memory, in the same run.

``python bench/trace_size.py [--hours 12] [--gpus 4]`` writes the same samples twice, through
:class:`svbench.instrument.trace.TraceWriter` as the sidecar does (one write per sensor read, a flush every 0.5 s
of trace time): once as ``trace.csv.zst`` (this version) and once as ``trace.csv`` (the earlier versions'
long CSV). The samples are a GPU node's at the default intervals (``bench/join.py``'s node: NVML every
0.1 s, energy + instant power per GPU, power_avg/utilisation/memory every 1 s; RAPL package + DRAM of two
sockets every 0.5 s; IPMI every 2 s) with realistic noise at the sensors' own resolution: power N(0, 8 W)
around a slow swing, in mW (NVML's unit); energy counters in mJ and µJ rising by the noisy power; utilisation
jittering in whole %, used memory moving in 2 MiB pages; IPMI in whole watts; each read's stamp late by a
gamma-distributed scheduling delay (~0.3 ms) and the wall clock a few µs off the monotonic one. It then joins
each with ``bench/join.py``'s markers (an epoch per 5 minutes) in a fresh process (wall time, peak RSS),
and draws the timeline figures' reader (``binned_power``) the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from join import PEAK, ROOT, T0_MONO, T0_WALL, _measure, write_markers  # noqa: E402

from svbench.instrument.nodes import LEGACY_TRACE, TRACE  # noqa: E402
from svbench.instrument.sensors.base import Reading  # noqa: E402
from svbench.instrument.sidecar import FLUSH_S  # noqa: E402  (the sidecar's flush period)
from svbench.instrument.trace import SESSION_QUANTITY, SESSION_SENSOR, TraceWriter  # noqa: E402


def noisy_reads(hours: float, gpus: int, seed: int = 0) -> Iterator[tuple[float, str, list[Reading], int, int]]:
    """``(t, sensor, readings, t_wall_ns, t_mono_ns)`` per sensor read, in time order, a minute at a time."""
    rng = np.random.default_rng(seed)
    energy, rapl, mem = np.zeros(gpus), np.zeros(4), np.full(gpus, 3.2e10)
    yield 0.0, SESSION_SENSOR, [Reading("bench", SESSION_QUANTITY, 0.0, "", "other")], T0_WALL, T0_MONO
    for minute in range(int(hours * 60)):
        a = minute * 60.0
        events = []
        fast = a + np.arange(600) * 0.1
        power = np.round((300 + 10 * np.sin(fast / 30)[:, None] + rng.normal(0, 8, (600, gpus))) * 1000) / 1000
        late = rng.gamma(2.0, 150e-6, 600)
        for i, t in enumerate(fast):
            energy = np.round(energy + power[i] * 0.1 + rng.normal(0, 0.05, gpus), 3)
            readings = []
            for g in range(gpus):
                ch = f"gpu{g}"
                readings += [Reading(ch, "energy", float(energy[g]), "J", "gpu"),
                             Reading(ch, "power", float(power[i, g]), "W", "gpu")]
                if i % 10 == 0:
                    if rng.random() < 0.1:
                        mem[g] += rng.integers(-8, 9) * 2**21
                    readings += [Reading(ch, "power_avg", round(float(power[i, g]) + rng.normal(0, 3), 3), "W", "gpu"),
                                 Reading(ch, "utilisation", float(min(100, int(rng.normal(96, 3)))), "%", "gpu"),
                                 Reading(ch, "memory", float(mem[g]), "B", "gpu")]
            events.append((t + late[i], "nvml", readings))
        for t in a + np.arange(120) * 0.5:
            rapl = np.round(rapl + np.array([150, 150, 20, 20]) * 0.5 + rng.normal(0, [5, 5, 0.5, 0.5]), 6)
            readings = [Reading(f"package-{s}", "energy", float(rapl[s]), "J", "cpu") for s in range(2)]
            readings += [Reading(f"dram-{s}", "energy", float(rapl[2 + s]), "J", "dram") for s in range(2)]
            events.append((t + 0.03 + rng.gamma(2.0, 100e-6), "rapl", readings))
        for t in a + np.arange(30) * 2.0:
            events.append((t + 0.07 + rng.gamma(2.0, 5e-3), "ipmi",
                           [Reading("node", "power", float(int(rng.normal(1900, 30))), "W", "node")]))
        events.sort(key=lambda e: e[0])
        for t, sensor, readings in events:
            mono = T0_MONO + int(t * 1e9)
            yield t, sensor, readings, T0_WALL + int(t * 1e9) + int(rng.normal(0, 2000)), mono


def write_both(folder: Path, hours: float, gpus: int) -> tuple[Path, Path, int]:
    """The same samples as ``trace.csv.zst`` and ``trace.csv``, each flushed every 0.5 s of trace time."""
    compact, legacy = TraceWriter(folder / TRACE, flush_s=1e9), TraceWriter(folder / LEGACY_TRACE, flush_s=1e9)
    rows, edge = 0, FLUSH_S
    for t, sensor, readings, wall, mono in noisy_reads(hours, gpus):
        flush = t >= edge
        if flush:
            edge += FLUSH_S
        for w in (compact, legacy):
            w.write_batch([(sensor, readings, wall, mono)], flush=flush)
        rows += len(readings)
    compact.close(), legacy.close()
    return folder / TRACE, folder / LEGACY_TRACE, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument("--dir", type=Path, help="where to write the traces (default: a temporary folder)")
    args = parser.parse_args(argv)
    folder = args.dir or Path(tempfile.mkdtemp(prefix="svbench-bench-trace-"))
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    compact, legacy, rows = write_both(folder, args.hours, args.gpus)
    markers = folder / "markers.jsonl"
    write_markers(markers, args.hours)
    print(f"{os.cpu_count()} CPUs; {args.hours:g} h x {args.gpus} GPUs, {rows / 1e6:.2f} M rows (both written in "
          f"{time.perf_counter() - t:.0f} s) in {folder}")
    print(f"{'trace':>14} {'MB':>8} {'MB/GPU-h':>9} | {'join s':>7} {'join MB':>8} | {'timeline s':>10} {'MB':>6}")
    for path in (legacy, compact):
        join_s, join_mb = _measure(
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); from svbench.energy.join import join; "
            f"join({str(path)!r}, {str(markers)!r}, {str(folder / 'energy.csv')!r}); {PEAK}")
        plot_s, plot_mb = _measure(
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); from svbench.study.figures import binned_power; "
            f"binned_power({str(path)!r}); {PEAK}")
        size = path.stat().st_size / 1e6
        print(f"{path.name:>14} {size:8.2f} {size / args.hours / args.gpus:9.3f} | {join_s:7.2f} {join_mb:8.0f} | "
              f"{plot_s:10.2f} {plot_mb:6.0f}", flush=True)
    print(f"size: {legacy.stat().st_size / compact.stat().st_size:.1f}x smaller")
    if not args.dir:
        compact.unlink(), legacy.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
