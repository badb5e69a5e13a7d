"""A fake node for the monitor and its sidecar: fake sensors at the OS edge, and helpers to watch the processes.

Used by the energy tests, the fault tests and the sidecar benchmark's test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from support import FAKES

from fakes.gpus import UUID_A, write_fake_pynvml
from fakes.powercap import PowercapTree
from svbench.instrument.markers import Marker, read_markers

TIMEOUT = 60  # every subprocess ends within this, whatever happens

WORKLOAD = r"""
import os, signal, sys, time
from pathlib import Path
from svbench.instrument.markers import phase
mode, arg = sys.argv[1], sys.argv[2]
if mode == "term":
    def on_term(*_):
        Path(arg).write_text("checkpoint")
        sys.exit(143)
    signal.signal(signal.SIGTERM, on_term)
with phase("load"):
    time.sleep(0.3)
with phase("work", 0):
    if mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode in ("term", "sleep"):
        time.sleep(30)
    t = time.monotonic()
    while time.monotonic() - t < float(os.environ.get("WORK_S", "0.8")):
        pass
sys.exit(int(arg) if mode == "exit" else 0)
"""

GPU_W, CPU_W, DRAM_W, NODE_W = 300, 20, 5, 400
PKG_RANGE_UJ = 60_000_000  # 60 J: the package counter wraps about once every 3 s at 20 W


class Node:
    """Fake sensors for a sidecar process, and the energy config that samples them fast."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp_path
        self.monkeypatch = monkeypatch
        # max_power_w: the fake package's 60-J counter wraps every 0.6 s at 100 W, four times the 0.05-s interval
        self.config: dict = {"nvml": {"interval_s": 0.05}, "rapl": {"interval_s": 0.05, "max_power_w": 100},
                             "ipmi": {"interval_s": 0.1, "timeout_s": 2, "retries": 0},
                             "estimate": {"interval_s": 0.05}}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for var in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "CUDA_VISIBLE_DEVICES", "FAKE_IPMI_MODE",
                    "FAKE_IPMI_MODE_FILE", "FAKE_IPMI_FAIL_AFTER", "WORK_S"):
            monkeypatch.delenv(var, raising=False)
        # nothing by default: a real GPU, powercap or BMC of the test machine must not leak in
        empty = tmp_path / "no-gpu"
        empty.mkdir()
        shutil.copy(FAKES / "fake_pynvml" / "pynvml.py", empty / "pynvml.py")  # no GPUS: "no GPU"
        monkeypatch.setenv("PYTHONPATH", str(empty))
        monkeypatch.setenv("SVBENCH_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
        monkeypatch.setenv("SVBENCH_IPMITOOL", str(tmp_path / "no-ipmitool"))

    def with_gpu(self) -> None:
        folder = self.tmp / "gpu"
        write_fake_pynvml(folder, [UUID_A], watts=GPU_W)
        self.monkeypatch.setenv("PYTHONPATH", str(folder))

    def with_rapl(self, reset_after_s: float | None = None) -> None:
        """Package (wrapping soon after the start) and DRAM counters advanced by a thread, like the CPU would;
        with ``reset_after_s`` the package counter restarts from 0 then (a driver reload, a firmware reset)."""
        root = self.tmp / "powercap"
        root.mkdir()
        tree = PowercapTree(root)
        tree.add_zone("intel-rapl:0", "package-0", energy_uj=PKG_RANGE_UJ - 1_000_000, max_range_uj=PKG_RANGE_UJ)
        tree.add_zone("intel-rapl:0:0", "dram", energy_uj=0)
        self.monkeypatch.setenv("SVBENCH_POWERCAP_ROOT", str(root))
        t0 = time.monotonic()

        def advance() -> None:
            # Rewritten in place, as sysfs does (same inode: the sensor keeps energy_uj open and preads it),
            # with one fixed-width pwrite so that a concurrent read never sees a half-written number.
            files = [(os.open(tree.energy_file("intel-rapl:0"), os.O_WRONLY), PKG_RANGE_UJ - 1_000_000, CPU_W,
                      PKG_RANGE_UJ),
                     (os.open(tree.energy_file("intel-rapl:0:0"), os.O_WRONLY), 0, DRAM_W, 2**40)]
            try:
                while not self._stop.wait(0.01):
                    el = time.monotonic() - t0
                    for k, (fd, start, watts, top) in enumerate(files):
                        value = int(start + watts * 1e6 * el) % top
                        if k == 0 and reset_after_s is not None and el > reset_after_s:
                            value = int(watts * 1e6 * (el - reset_after_s))
                        os.pwrite(fd, f"{value:015d}\n".encode(), 0)
            finally:
                for fd, *_ in files:
                    os.close(fd)

        self._thread = threading.Thread(target=advance, daemon=True)
        self._thread.start()

    def with_ipmi(self, fail_after: int | None = None, mode: str = "session") -> None:
        """The fake ipmitool; it turns bad (``mode``) after ``fail_after`` readings when that is given."""
        bin_dir = self.tmp / "bin"
        bin_dir.mkdir()
        tool = bin_dir / "ipmitool"
        shutil.copy(FAKES / "ipmitool", tool)
        tool.chmod(0o755)
        self.monkeypatch.setenv("SVBENCH_IPMITOOL", str(tool))
        self.monkeypatch.setenv("FAKE_IPMI_WATTS", str(NODE_W))
        if fail_after is not None:
            self.monkeypatch.setenv("FAKE_IPMI_COUNT", str(bin_dir / "count"))
            self.monkeypatch.setenv("FAKE_IPMI_FAIL_AFTER", str(fail_after))
            self.monkeypatch.setenv("FAKE_IPMI_FAIL_MODE", mode)

    def all_sensors(self) -> None:
        self.with_gpu()
        self.with_rapl()
        self.with_ipmi()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def monitor_cmd(self, out: Path, mode: str = "exit", arg: str = "0", baseline: float = 0.0) -> list[str]:
        config = self.tmp / "energy config.json"  # a space on purpose: paths are never split
        config.write_text(json.dumps(self.config))
        return [sys.executable, "-m", "svbench.cli", "monitor", "--out", str(out), "--config", str(config),
                "--baseline", str(baseline), "--", sys.executable, "-c", WORKLOAD, mode, arg]

    def monitor(self, out: Path, mode: str = "exit", arg: str = "0", baseline: float = 0.0) -> subprocess.Popen:
        cmd = self.monitor_cmd(out, mode, arg, baseline)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run(self, out: Path, mode: str = "exit", arg: str = "0", baseline: float = 0.0) -> tuple[int, str]:
        proc = self.monitor(out, mode, arg, baseline)
        try:
            output, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            pytest.fail(f"monitor did not finish within {TIMEOUT} s:\n{output}")
        return proc.returncode, output


def wait_for(check: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def started(out: Path, name: str) -> Marker | None:
    """The first start marker of phase ``name`` in ``out``, None while there is none."""
    return next((m for m in read_markers(out / "markers.jsonl") if m.event == "start" and m.phase == name), None)


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
