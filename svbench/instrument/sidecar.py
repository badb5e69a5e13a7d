"""The sidecar: a separate process that samples every available sensor beside the job.

Every sensor is read at its own interval. The fast in-process sensors (NVML, RAPL, the estimate)
share one scheduler thread that sleeps until the next reading of any of them is due, reads every
sensor then due, and writes their rows with one flush: the cost of the sidecar is per wake-up, so
sensors with commensurate intervals share their wake-ups. A sensor that calls out to another
process (IPMI: an ipmitool that may take seconds to answer, or never) has a thread of its own, so a
slow BMC never delays NVML or RAPL. Whatever the sidecar starts stays in its process group, which the
monitor clears once the sidecar is gone. Readings go to ``trace.csv.zst`` (see
:mod:`svbench.instrument.trace`); what was found, and why anything was not, goes to ``sidecar.json``. It
stops on SIGTERM/SIGINT, or by itself when the process it watches is gone.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import re
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import psutil

from svbench.errors import UserError
from svbench.fileio import write_text_atomic
from svbench.instrument.config import EnergyConfig
from svbench.instrument.nodes import SIDECAR, trace_path
from svbench.instrument.sensors import (
    EstimateSensor,
    Reading,
    Sensor,
    SensorStatus,
    SensorUnavailable,
    physical_sensors,
)
from svbench.instrument.sensors.base import SensorConfigError
from svbench.instrument.trace import SESSION_QUANTITY, SESSION_SENSOR, TraceWriter

log = logging.getLogger("svbench.sidecar")

READY_FILE = SIDECAR
WORKLOAD_FILE = "workload.json"  # the monitor's workload (pid, process group): ended if the monitor dies
OPEN_BUDGET_S = 20.0  # every sensor's open() together: a sensor still probing then is unavailable
FIRST_READING_WAIT_S = 20.0  # then each sensor's first reading
READY_WAIT_S = OPEN_BUDGET_S + FIRST_READING_WAIT_S + 20.0  # what the monitor waits for the ready file
OWN_THREAD = frozenset({"ipmi"})  # sensors whose read blocks on another process: never share a thread
SHARE_S = 0.005  # readings due within this of each other are taken in the same wake-up
WATCH_S = 1.0  # how often the main thread checks that the watched process is still there
FLUSH_S = 0.5  # the trace reaches the OS at least this often: what a SIGKILL may lose


def _open_bounded(sensor: Sensor, deadline: float) -> BaseException | None:
    """Open ``sensor`` in a thread of its own, waiting until ``deadline`` at most; returns what it raised.
    A probe that hangs (a BMC that never answers, a stuck driver) must not hold the job back."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            sensor.open()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome.append(exc)

    thread = threading.Thread(target=run, name=f"open-{sensor.name}", daemon=True)
    thread.start()
    thread.join(max(deadline - time.monotonic(), 0.0))
    if not outcome:
        return TimeoutError(f"did not answer within the {OPEN_BUDGET_S:g}-s start-up budget")
    return outcome[0]


def open_sensors(config: EnergyConfig, track_pid: int) -> tuple[list[Sensor], list[SensorStatus]]:
    """Open every configured sensor; the estimate stands in only when no RAPL covers the CPU.

    All opens together get ``OPEN_BUDGET_S``: a sensor still probing then is recorded as unavailable
    and closed (which ends any tool it started), so the job starts in bounded time whatever the BMC does.
    """
    opened: list[Sensor] = []
    statuses: list[SensorStatus] = []
    deadline = time.monotonic() + OPEN_BUDGET_S
    for sensor in physical_sensors(config):
        exc = _open_bounded(sensor, deadline)
        if isinstance(exc, SensorConfigError):
            sensor.close()
            raise exc  # a config value the sensor cannot work with: the user must change it, not lose the sensor
        if exc is not None:
            reason = str(exc) if isinstance(exc, SensorUnavailable | TimeoutError) else f"{type(exc).__name__}: {exc}"
            statuses.append(SensorStatus(sensor.name, False, reason))
            sensor.close()
            continue
        opened.append(sensor)
        statuses.append(SensorStatus(sensor.name, True, metadata=sensor.metadata()))
    if not any(s.name == "rapl" for s in opened) and config.estimate.enabled:
        sensor = EstimateSensor(track_pid, config.estimate)
        try:
            sensor.open()
            opened.append(sensor)
            meta = sensor.metadata() | {"source": config.estimate.source}
            statuses.append(SensorStatus(sensor.name, True, "no CPU sensor: estimated", meta))
        except SensorUnavailable as exc:
            statuses.append(SensorStatus(sensor.name, False, str(exc)))
    return opened, statuses


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def node_metadata() -> dict:
    """Facts about the node worth keeping with the trace."""
    env = {k: os.environ[k] for k in ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_RESTART_COUNT",
                                      "SLURM_JOB_PARTITION", "CUDA_VISIBLE_DEVICES") if k in os.environ}
    return {"host": socket.gethostname(), "cpu_model": cpu_model(), "logical_cpus": os.cpu_count(),
            "memory_bytes": psutil.virtual_memory().total, "gpu_devices": gpu_devices(), "environment": env}


def gpu_devices(dev: str | None = None) -> int:
    """NVIDIA GPUs of the node: its ``/dev/nvidiaN`` device files (what an unset CUDA_VISIBLE_DEVICES
    gives a job), whatever NVML can read. ``SVBENCH_DEV_ROOT`` points elsewhere for tests."""
    root = Path(dev or os.environ.get("SVBENCH_DEV_ROOT") or "/dev")
    try:
        return sum(1 for p in root.iterdir() if re.fullmatch(r"nvidia\d+", p.name))
    except OSError:
        return 0


class _Latch:
    """A stop flag that sampling threads sleep on: ``wait(t)`` is one timed lock acquire (what
    ``time.sleep`` costs), not the several Python calls of ``threading.Event.wait``; every wake-up counts
    in the sidecar's overhead. The lock is held until ``set()`` releases it for good."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        if self._lock.acquire(timeout=timeout):
            self._lock.release()  # let the other sleepers through too
            return True
        return self._set


class _Slot:
    """One sensor in a sampling thread: when it is due next, its errors, whether it has been read."""

    __slots__ = ("sensor", "interval_s", "due", "errors", "first")

    def __init__(self, sensor: Sensor, due: float, first: threading.Event) -> None:
        self.sensor = sensor
        self.interval_s = float(sensor.interval_s)
        self.due = due
        self.errors = 0
        self.first: threading.Event | None = first

    def read(self) -> tuple[str, list[Reading], int, int]:
        t0_wall, t0_mono = time.time_ns(), time.monotonic_ns()
        stamp: tuple[int, int] | None = None
        try:
            readings = self.sensor.read()
            # a sensor that retries inside read() (IPMI) knows when the try that answered ran
            stamp = getattr(self.sensor, "last_stamp", None)
        except Exception as exc:  # a failing sensor becomes a recorded gap; the others go on
            self.errors += 1
            if self.errors <= 3 or self.errors % 100 == 0:
                log.warning("sensor %s failed (%d times): %s", self.sensor.name, self.errors, exc)
            readings = [Reading("*", "error", math.nan, "", "other")]
        if stamp is not None:
            return self.sensor.name, readings, stamp[0], stamp[1]
        # else stamp the midpoint: honest for instant reads and for a slow single call alike
        t1_wall, t1_mono = time.time_ns(), time.monotonic_ns()
        return self.sensor.name, readings, (t0_wall + t1_wall) // 2, (t0_mono + t1_mono) // 2


def _sample_loop(slots: list[_Slot], writer: TraceWriter, stop: _Latch) -> None:
    """Read each sensor of ``slots`` at its own interval, in this one thread, until ``stop``.

    One wake-up reads every sensor due within ``SHARE_S`` and writes all their rows at once. After the
    stop, every sensor is read one last time, so the trace covers the end marker.
    """
    while True:
        final = stop.is_set()
        now = time.monotonic()
        batch = []
        read: list[_Slot] = []
        for slot in slots:
            if final or slot.due <= now + SHARE_S:
                batch.append(slot.read())
                read.append(slot)
                slot.due += slot.interval_s
                after = time.monotonic()
                if slot.due < after:
                    slot.due = after  # fell behind (slow read): do not burst to catch up
        firsts = [slot for slot in read if slot.first is not None]
        # a sensor's first rows, and the last ones, reach the file at once: the ready file must follow them
        writer.write_batch(batch, flush=final or bool(firsts))
        for slot in firsts:
            slot.first.set()
            slot.first = None
        if final:
            return
        stop.wait(max(min(slot.due for slot in slots) - time.monotonic(), 0.0))


def run_sidecar(out_dir: Path, config: EnergyConfig, track_pid: int, stop: threading.Event | None = None) -> None:
    """Sample until ``stop`` is set or ``track_pid`` is gone. Writes the trace and sidecar.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    sensors, statuses = open_sensors(config, track_pid)
    writer = TraceWriter(trace_path(out_dir), flush_s=FLUSH_S)  # an earlier version's trace.csv goes on as CSV
    started_wall_ns, started_mono_ns = time.time_ns(), time.monotonic_ns()
    # every row after this one, to the next session row, is this sidecar's, on this node's monotonic clock:
    # a requeued job appends a new session (another node, another clock) to the same trace
    session = uuid.uuid4().hex
    writer.write_batch([(SESSION_SENSOR, [Reading(session, SESSION_QUANTITY, 0.0, "", "other")],
                         started_wall_ns, started_mono_ns)], flush=True)
    firsts = [threading.Event() for _ in sensors]
    start = time.monotonic()
    slots = [_Slot(s, start, ev) for s, ev in zip(sensors, firsts, strict=True)]
    groups = [[slot] for slot in slots if slot.sensor.name in OWN_THREAD]
    shared = [slot for slot in slots if slot.sensor.name not in OWN_THREAD]
    if shared:
        groups.insert(0, shared)
    latch = _Latch()
    threads = [threading.Thread(target=_sample_loop, args=(group, writer, latch),
                                name="sensors-" + "+".join(slot.sensor.name for slot in group), daemon=True)
               for group in groups]
    for t in threads:
        t.start()
    # every sensor's first reading comes before the ready file, hence before the job's begin marker:
    # a counter read only after the begin would lose the start of the job
    deadline = time.monotonic() + FIRST_READING_WAIT_S
    for ev in firsts:
        ev.wait(max(deadline - time.monotonic(), 0.0))
    meta = {"node": node_metadata(), "pid": os.getpid(), "track_pid": track_pid,
            "sensors": [asdict(s) for s in statuses], "started_wall_ns": started_wall_ns,
            "started_mono_ns": started_mono_ns, "session": session}
    write_text_atomic(out_dir / READY_FILE, json.dumps(meta, indent=2, default=str))  # tells the monitor we sample
    gc.freeze()  # what start-up built lives on untouched: keep the garbage collector from walking it again
    parent = os.getppid()
    while not stop.wait(WATCH_S):
        if not psutil.pid_exists(track_pid) or os.getppid() != parent:
            log.warning("monitored process %d is gone: stopping", track_pid)
            end_orphaned_workload(out_dir)
            break
    stop.set()
    latch.set()
    for t in threads:
        t.join(timeout=2.0)  # a hung sensor call is abandoned (daemon thread), not waited for
    for s in sensors:
        try:
            s.close()
        except Exception as exc:
            log.warning("closing sensor %s: %s", s.name, exc)
    writer.close()


def end_orphaned_workload(out_dir: Path) -> None:
    """The monitor died without ending its workload (SIGKILL, the OOM killer): end the workload's process
    group, TERM then KILL, so nothing keeps the GPU. The monitor writes ``workload.json`` when it starts the
    workload and removes it once the workload has ended; the group is checked to still be that workload's."""
    path = Path(out_dir) / WORKLOAD_FILE
    try:
        info = json.loads(path.read_text())
        pgid, pid = int(info["pgid"]), int(info["pid"])
    except (OSError, ValueError, KeyError):
        return
    try:
        if os.getpgid(pid) != pgid:
            return  # the leader is gone and its id reused, or it left the group: not ours to kill
    except ProcessLookupError:
        pass  # the leader died; its group may live on
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.05)
    log.warning("ended the orphaned workload (process group %d)", pgid)
    path.unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m svbench.instrument.sidecar")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--track-pid", type=int, required=True)
    parser.add_argument("--config-file", type=Path, required=True,
                        help="the energy config as a JSON file (never on the command line: ps shows argv to all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[sidecar] %(message)s", stream=sys.stderr)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        config = EnergyConfig.from_dict(json.loads(args.config_file.read_text()))
        run_sidecar(args.out, config, args.track_pid, stop)
    except UserError as exc:
        print(f"svbench sidecar: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
