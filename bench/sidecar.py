"""What the sensor sidecar costs: its CPU time as % of one core, and its sampling jitter.

Run by hand: ``.venv/bin/python bench/sidecar.py [--seconds 20] [--repeat 2]``. The sidecar samples the
test fakes (a powercap tree, the fake pynvml with 2 GPUs, the fake ipmitool) with every sensor at
10 Hz (NVML 0.1 s, RAPL 0.1 s, IPMI 0.1 s; ``--interval ipmi=2`` for the default IPMI interval)
beside an idle workload (``sleep``). Three sidecars, measured in the same run, interleaved:

* baseline: no sensor at all, the cost of the process itself (interpreter, watching its parent);
* IPMI as one ``ipmitool`` process per reading (``ipmi.persistent: false``, how it worked before);
* IPMI through one long-lived ``ipmitool shell`` (the default).

"own" is the sidecar process (all its threads, from ``/proc/…/schedstat``); "with tools" adds the
ipmitool processes it started (running ones from /proc, finished ones as reaped-children time).
Steady state leaves out the first two seconds (interpreter start, imports). NVML's context figures
(power_avg, utilisation, memory) are read at the sensor's default ``context_interval_s`` (1 s).
The machine is shared: ``--repeat`` runs the three in turn that many times; report the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
FAKES = ROOT / "tests" / "fakes"
sys.path.insert(0, str(ROOT / "tests"))

from fakes.gpus import UUID_A, UUID_B, write_fake_pynvml  # noqa: E402
from fakes.powercap import two_socket_server  # noqa: E402

from svbench.instrument.nodes import SIDECAR, trace_path  # noqa: E402
from svbench.instrument.trace import read_trace  # noqa: E402

GOAL_PCT = 0.5
WARMUP_S = 2.0


def cpu_s(proc: psutil.Process) -> float:
    """CPU seconds of all threads of ``proc``: schedstat (ns) where Linux has it, ticks (10 ms) otherwise."""
    try:
        tasks = Path(f"/proc/{proc.pid}/task").iterdir()
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
    except (OSError, ValueError):
        t = proc.cpu_times()
        return t.user + t.system


def tools_cpu_s(proc: psutil.Process) -> float:
    """CPU seconds of what ``proc`` started: finished (reaped) children and the ones still running."""
    t = proc.cpu_times()
    total = t.children_user + t.children_system
    for child in proc.children(recursive=True):
        try:
            total += cpu_s(child)
        except psutil.NoSuchProcess:
            pass
    return total


def run_sidecar(out: Path, config: dict, seconds: float, env: dict) -> dict:
    """One sidecar beside ``sleep``: % of one core, its own and with its tools, over the steady part."""
    workload = subprocess.Popen(["sleep", str(seconds + 10)])
    (out / "bench_config.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "bench_config.json").write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "svbench.instrument.sidecar", "--out", str(out), "--track-pid", str(workload.pid),
           "--config-file", str(out / "bench_config.json")]
    sidecar = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    proc = psutil.Process(sidecar.pid)
    try:
        time.sleep(WARMUP_S)
        own0, tools0, t0 = cpu_s(proc), tools_cpu_s(proc), time.monotonic()
        time.sleep(seconds - WARMUP_S)
        own1, tools1, t1 = cpu_s(proc), tools_cpu_s(proc), time.monotonic()
    finally:
        sidecar.terminate()
        sidecar.wait(timeout=30)
        workload.kill()
        workload.wait()
    own = 100 * (own1 - own0) / (t1 - t0)
    return {"own": own, "all": own + 100 * (tools1 - tools0) / (t1 - t0)}


def jitter(trace_path: Path, intervals: dict[str, float]) -> dict[str, dict]:
    trace = read_trace(trace_path)
    out = {}
    for sensor, g in trace.groupby("sensor"):
        t = np.unique(g["t_mono_ns"].to_numpy()) / 1e9
        d = np.diff(t)[:-1]  # the last reading is the one taken at the stop, off the schedule by design
        out[sensor] = {"n": len(t), "interval_s": intervals.get(sensor, float("nan")), "mean_ms": 1e3 * d.mean(),
                       "std_ms": 1e3 * d.std(), "p99_ms": 1e3 * np.percentile(d, 99), "max_ms": 1e3 * d.max(),
                       "errors": int((g["quantity"] == "error").sum())}
    return out


def machine() -> str:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}; {os.cpu_count()} logical CPUs ({len(os.sched_getaffinity(0))} usable); {platform.platform()}"


def spread(values: list[float]) -> str:
    return f"{min(values):.3f}" if len(values) == 1 else f"{min(values):.3f}–{max(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=1, help="run the three sidecars in turn this many times")
    parser.add_argument("--interval", action="append", default=[], metavar="SENSOR=S",
                        help="change one sensor's interval (default nvml=0.1 rapl=0.1 ipmi=0.1)")
    args = parser.parse_args()
    intervals = {"nvml": 0.1, "rapl": 0.1, "ipmi": 0.1}
    for item in args.interval:
        name, _, seconds = item.partition("=")
        if name not in intervals:
            parser.error(f"--interval {item}: sensor is one of {', '.join(intervals)}")
        intervals[name] = float(seconds)
    with tempfile.TemporaryDirectory(prefix="svbench-bench-") as tmp_name:
        tmp = Path(tmp_name)
        two_socket_server(tmp / "powercap")
        write_fake_pynvml(tmp / "nvml", [UUID_A, UUID_B], watts=300)
        shutil.copy(FAKES / "ipmitool", tmp / "ipmitool")
        (tmp / "ipmitool").chmod(0o755)
        env = os.environ | {"PYTHONPATH": str(tmp / "nvml"), "SVBENCH_POWERCAP_ROOT": str(tmp / "powercap"),
                            "SVBENCH_IPMITOOL": str(tmp / "ipmitool")}
        sensors = {name: {"interval_s": s} for name, s in intervals.items()} | {"estimate": {"enabled": False}}
        variants = {
            "baseline (sidecar, no sensor)": {"sensors": [], "estimate": {"enabled": False}},
            "all sensors, ipmitool per reading": sensors | {"ipmi": sensors["ipmi"] | {"persistent": False}},
            "all sensors, ipmitool shell": sensors,
        }
        print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")
        print(f"python {platform.python_version()}; {args.seconds:g} s per run, first {WARMUP_S:g} s left out; "
              f"intervals {intervals}; {args.repeat} round(s)")
        results: dict[str, list[dict]] = {name: [] for name in variants}
        for round_ in range(args.repeat):
            for i, (name, config) in enumerate(variants.items()):
                results[name].append(run_sidecar(tmp / f"run{round_}-{i}", config, args.seconds, env))
        meta = json.loads((tmp / "run0-2" / SIDECAR).read_text())
        print("sensors sampled: " + ", ".join(f"{s['name']} ({(s.get('metadata') or {}).get('mode', 'in process')})"
                                             for s in meta["sensors"] if s["available"]))
        base = float(np.mean([r["own"] for r in results["baseline (sidecar, no sensor)"]]))
        print(f"{'% of one core, steady state':36s} {'own':>13s} {'with tools':>13s} {'own / baseline':>15s}")
        for name, runs in results.items():
            own = [r["own"] for r in runs]
            print(f"{name:36s} {spread(own):>13s} {spread([r['all'] for r in runs]):>13s} "
                  f"{np.mean(own) / max(base, 1e-9):>14.1f}x")
        best = max(r["all"] for r in results["all sensors, ipmitool shell"])
        print(f"goal: under {GOAL_PCT} % of one core, tools included: "
              f"{'met' if best < GOAL_PCT else 'MISSED'} (worst run {best:.3f} %)")
        print("sampling jitter, ipmitool shell (interval between consecutive readings):")
        for sensor, j in jitter(trace_path(tmp / "run0-2"), intervals).items():
            print(f"  {sensor:5s} n={j['n']:4d} nominal {1e3 * j['interval_s']:.0f} ms: mean {j['mean_ms']:.1f} ms, "
                  f"std {j['std_ms']:.2f} ms, p99 {j['p99_ms']:.1f} ms, max {j['max_ms']:.1f} ms, "
                  f"errors {j['errors']}")


if __name__ == "__main__":
    main()
