"""What the sensor sidecar costs: its CPU time as % of one core, and its sampling jitter.

Run by hand: ``.venv/bin/python bench/sidecar.py [--seconds 20]``. The sidecar samples the test fakes
(a powercap tree, the fake pynvml, the fake ipmitool) at NVML 0.1 s, RAPL 0.1 s, IPMI 0.5 s beside an
idle workload (``sleep``). The baseline, measured in the same run, is the sidecar with no sensor at
all: the cost of the process itself (the interpreter, watching its parent). Steady-state figures
leave out the first two seconds (interpreter start and imports). NVML's context figures (power_avg,
utilisation, memory) are read at the sensor's default ``context_interval_s`` (1 s) unless
``--nvml-context-s`` says otherwise (0.1: every read, as before that option existed).
The machine is shared: run it a few times and report the spread.
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

from fakes.powercap import two_socket_server  # noqa: E402

from svbench.energy.trace import read_trace  # noqa: E402

GOAL_PCT = 0.5
WARMUP_S = 2.0
PYNVML = """
import importlib.util
_spec = importlib.util.spec_from_file_location("_fake_pynvml", {fake!r})
_fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fake)
globals().update({{k: v for k, v in vars(_fake).items() if not k.startswith("__")}})
_fake.add_gpu("GPU-aaaaaaaa-1111-2222-3333-444444444444")
_fake.add_gpu("GPU-bbbbbbbb-5555-6666-7777-888888888888")
"""


def cpu_s(proc: psutil.Process, children: bool = False) -> float:
    """CPU seconds; the thread's own from schedstat (ns) where Linux has it, as ticks come in 10 ms steps."""
    t = proc.cpu_times()
    reaped = (t.children_user + t.children_system) if children else 0.0
    try:
        tasks = Path(f"/proc/{proc.pid}/task").iterdir()
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9 + reaped
    except (OSError, ValueError):
        return t.user + t.system + reaped


def run_sidecar(out: Path, config: dict, seconds: float, env: dict) -> dict:
    """One sidecar beside ``sleep``; CPU time (own and with its reaped children, e.g. ipmitool)."""
    workload = subprocess.Popen(["sleep", str(seconds + 10)])
    cmd = [sys.executable, "-m", "svbench.energy.sidecar", "--out", str(out), "--track-pid", str(workload.pid),
           "--config", json.dumps(config)]
    sidecar = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    proc = psutil.Process(sidecar.pid)
    try:
        time.sleep(WARMUP_S)
        c0, c0_all, t0 = cpu_s(proc), cpu_s(proc, True), time.monotonic()
        time.sleep(seconds - WARMUP_S)
        c1, c1_all, t1 = cpu_s(proc), cpu_s(proc, True), time.monotonic()
        total = c1
    finally:
        sidecar.terminate()
        sidecar.wait(timeout=30)
        workload.kill()
        workload.wait()
    return {"steady_pct": 100 * (c1 - c0) / (t1 - t0), "steady_all_pct": 100 * (c1_all - c0_all) / (t1 - t0),
            "total_cpu_s": total}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", action="append", default=[], metavar="SENSOR=S",
                        help="change one sensor's interval (default nvml=0.1 rapl=0.1 ipmi=0.5)")
    parser.add_argument("--nvml-context-s", type=float, default=None,
                        help="NVML context_interval_s (default: the sensor's own, 1 s)")
    args = parser.parse_args()
    intervals = {"nvml": 0.1, "rapl": 0.1, "ipmi": 0.5}
    for item in args.interval:
        name, _, seconds = item.partition("=")
        if name not in intervals:
            parser.error(f"--interval {item}: sensor is one of {', '.join(intervals)}")
        intervals[name] = float(seconds)
    with tempfile.TemporaryDirectory(prefix="svbench-bench-") as tmp_name:
        tmp = Path(tmp_name)
        two_socket_server(tmp / "powercap")
        (tmp / "nvml").mkdir()
        (tmp / "nvml" / "pynvml.py").write_text(PYNVML.format(fake=str(FAKES / "fake_pynvml" / "pynvml.py")))
        shutil.copy(FAKES / "ipmitool", tmp / "ipmitool")
        (tmp / "ipmitool").chmod(0o755)
        env = os.environ | {"PYTHONPATH": str(tmp / "nvml"), "SVBENCH_POWERCAP_ROOT": str(tmp / "powercap"),
                            "SVBENCH_IPMITOOL": str(tmp / "ipmitool")}
        config = {name: {"interval_s": s} for name, s in intervals.items()} | {"estimate": {"enabled": False}}
        if args.nvml_context_s is not None:
            config["nvml"]["context_interval_s"] = args.nvml_context_s
        empty = {"sensors": [], "estimate": {"enabled": False}}

        print(f"machine: {machine()}")
        print(f"python {platform.python_version()}; {args.seconds:g} s per run, first {WARMUP_S:g} s left out")
        base = run_sidecar(tmp / "base", empty, args.seconds, env)
        full = run_sidecar(tmp / "full", config, args.seconds, env)
        meta = json.loads((tmp / "full" / "sidecar.json").read_text())
        used = [s["name"] for s in meta["sensors"] if s["available"]]
        context = config["nvml"].get("context_interval_s", "default 1")
        print(f"sensors sampled: {', '.join(used)} (fakes); intervals {intervals}; NVML context every {context} s")
        print(f"baseline (sidecar, no sensor): {base['steady_pct']:.3f} % of one core")
        print(f"sidecar, all sensors:          {full['steady_pct']:.3f} % of one core "
              f"({full['steady_all_pct']:.3f} % with its ipmitool children); "
              f"ratio to baseline {full['steady_pct'] / max(base['steady_pct'], 1e-9):.1f}x")
        print(f"sidecar above baseline:        {full['steady_pct'] - base['steady_pct']:.3f} % "
              f"(goal < {GOAL_PCT} % of one core: {'met' if full['steady_pct'] < GOAL_PCT else 'MISSED'})")
        print(f"whole-run CPU incl. start-up: sidecar {full['total_cpu_s']:.2f} s, "
              f"baseline {base['total_cpu_s']:.2f} s")
        print("sampling jitter (interval between consecutive readings):")
        for sensor, j in jitter(tmp / "full" / "trace.csv", intervals).items():
            print(f"  {sensor:5s} n={j['n']:4d} nominal {1e3 * j['interval_s']:.0f} ms: mean {j['mean_ms']:.1f} ms, "
                  f"std {j['std_ms']:.2f} ms, p99 {j['p99_ms']:.1f} ms, max {j['max_ms']:.1f} ms, "
                  f"errors {j['errors']}")


if __name__ == "__main__":
    main()
