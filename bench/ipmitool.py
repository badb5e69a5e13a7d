"""What one IPMI reading costs with the real ipmitool: one long-lived ``ipmitool shell`` against one
process per reading.

Run by hand: ``.venv/bin/python bench/ipmitool.py [--readings 100] [--interval 0.1]`` on a machine with
Debian's ``ipmitool`` and ``openipmi``. The BMC is OpenIPMI's simulator (``ipmi_sim``) over LAN on
localhost (tests/fakes/ipmi_sim.py); it has no DCMI, so each ``dcmi power reading`` is answered with
"Invalid command", a full round trip all the same. Both ways take the same number of readings at the
same interval, in turn, through ``IpmiSensor.read()``: the sidecar thread's CPU per reading (its
thread time) and ipmitool's (the shell's from /proc, the one-shot processes' as reaped-children time).
The simulator's own CPU is not counted. A local BMC (``-I open``) spares the LAN session set-up that
dominates one-shot cost here: measure on the node before quoting.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakes import ipmi_sim  # noqa: E402

from svbench.instrument.config import IpmiConfig  # noqa: E402
from svbench.instrument.sensors import ipmi  # noqa: E402


def proc_cpu_s(pid: int) -> float:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def children_cpu_s() -> float:
    t = os.times()
    return t.children_user + t.children_system


def measure(args: list[str], persistent: bool, readings: int, interval_s: float) -> dict:
    """CPU ms per reading: this thread's and ipmitool's. The code paths are the sensor's own: the
    shell's ``command`` (what a persistent sensor's read calls), or ``read`` without a shell."""
    if persistent:
        shell = ipmi.IpmitoolShell(["ipmitool", *args, "shell"])
        shell.start(10)
        tool_pid = shell.pid

        def one() -> None:
            shell.command(ipmi.READING_LINE, 10)
    else:
        config = IpmiConfig(binary="ipmitool", extra_args=tuple(args), retries=0, timeout_s=10, persistent=False)
        sensor = ipmi.IpmiSensor(config)
        tool_pid = None

        def one() -> None:
            try:
                sensor.read()
            except ipmi.IpmiError:  # no DCMI on the simulator: a full round trip all the same
                pass

    thread0, kids0 = time.thread_time(), children_cpu_s()
    tool0 = proc_cpu_s(tool_pid) if tool_pid else 0.0
    due = time.monotonic()
    for _ in range(readings):
        one()
        due += interval_s
        time.sleep(max(0.0, due - time.monotonic()))
    thread = time.thread_time() - thread0
    tool = (proc_cpu_s(tool_pid) - tool0) if tool_pid else (children_cpu_s() - kids0)
    if persistent:
        shell.stop()
    return {"thread_ms": 1e3 * thread / readings, "tool_ms": 1e3 * tool / readings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=2)
    a = parser.parse_args()
    if not ipmi_sim.available():
        sys.exit("needs ipmitool and ipmi_sim: apt-get install ipmitool openipmi")
    version = subprocess.run(["ipmitool", "-V"], capture_output=True, text=True).stdout.strip()
    print(f"{version}; python {platform.python_version()}; {platform.platform()}")
    print(f"{a.readings} readings every {a.interval:g} s per run, {a.repeat} round(s), BMC: ipmi_sim over LAN")
    with tempfile.TemporaryDirectory(prefix="svbench-ipmi-") as tmp:
        sim, args = ipmi_sim.start_bmc(Path(tmp))
        try:
            results: dict[str, list[dict]] = {"one process per reading": [], "ipmitool shell": []}
            for _ in range(a.repeat):
                results["one process per reading"].append(measure(args, False, a.readings, a.interval))
                results["ipmitool shell"].append(measure(args, True, a.readings, a.interval))
        finally:
            sim.kill()
            sim.wait()
    print(f"{'CPU ms per reading':26s} {'sidecar thread':>15s} {'ipmitool':>10s} {'% core at 2 s':>14s}")
    for name, runs in results.items():
        thread = [r["thread_ms"] for r in runs]
        tool = [r["tool_ms"] for r in runs]
        total = max(t + u for t, u in zip(thread, tool, strict=True))
        print(f"{name:26s} {min(thread):6.3f}–{max(thread):6.3f} {min(tool):5.2f}–{max(tool):5.2f} "
              f"{100 * total / 1e3 / 2.0:13.3f}")
    one = results["one process per reading"]
    shell = results["ipmitool shell"]
    ratio = (sum(r["thread_ms"] + r["tool_ms"] for r in one) / sum(r["thread_ms"] + r["tool_ms"] for r in shell))
    print(f"one process per reading / shell, thread + ipmitool: {ratio:.0f}x")


if __name__ == "__main__":
    main()
