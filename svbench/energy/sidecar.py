"""The sidecar: a separate process that samples every available sensor beside the job.

Each sensor runs in its own thread at its own interval, so a slow BMC never delays NVML. Readings go
to ``trace.csv`` (see :mod:`svbench.energy.trace`); what was found, and why anything was not, goes to
``sidecar.json``. It stops on SIGTERM/SIGINT, or by itself when the process it watches is gone.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import psutil

from svbench.energy.sensors import EstimateSensor, Reading, Sensor, SensorStatus, SensorUnavailable, physical_sensors
from svbench.energy.trace import TraceWriter

log = logging.getLogger("svbench.sidecar")

READY_FILE = "sidecar.json"
FIRST_READING_WAIT_S = 30.0  # the monitor gives up on the sidecar after 60 s


def open_sensors(config: dict, track_pid: int) -> tuple[list[Sensor], list[SensorStatus]]:
    """Open every configured sensor; the estimate stands in only when no RAPL covers the CPU."""
    opened: list[Sensor] = []
    statuses: list[SensorStatus] = []
    for sensor in physical_sensors(config):
        try:
            sensor.open()
        except SensorUnavailable as exc:
            statuses.append(SensorStatus(sensor.name, False, str(exc)))
            sensor.close()
            continue
        except Exception as exc:  # a broken driver must not stop the job: record it and go on
            statuses.append(SensorStatus(sensor.name, False, f"{type(exc).__name__}: {exc}"))
            sensor.close()
            continue
        opened.append(sensor)
        statuses.append(SensorStatus(sensor.name, True, metadata=sensor.metadata()))
    estimate_cfg = config.get("estimate") or {}
    if not any(s.name == "rapl" for s in opened) and estimate_cfg.get("enabled", True):
        sensor = EstimateSensor(track_pid, float(estimate_cfg.get("watts_per_core", 7.5)),
                                float(estimate_cfg.get("watts_per_gib", 0.3725)),
                                float(estimate_cfg.get("interval_s", 0.5)))
        try:
            sensor.open()
            opened.append(sensor)
            meta = sensor.metadata() | {"source": estimate_cfg.get("source", "")}
            statuses.append(SensorStatus(sensor.name, True, "no CPU sensor: estimated", meta))
        except SensorUnavailable as exc:
            statuses.append(SensorStatus(sensor.name, False, str(exc)))
    return opened, statuses


def node_metadata() -> dict:
    """Facts about the node worth keeping with the trace."""
    cpu_model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {k: os.environ[k] for k in ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_RESTART_COUNT",
                                      "SLURM_JOB_PARTITION", "CUDA_VISIBLE_DEVICES") if k in os.environ}
    return {"host": socket.gethostname(), "cpu_model": cpu_model, "logical_cpus": os.cpu_count(),
            "memory_bytes": psutil.virtual_memory().total, "environment": env}


def _sample_loop(sensor: Sensor, writer: TraceWriter, stop: threading.Event,
                 first: threading.Event | None = None) -> None:
    next_t = time.monotonic()
    errors = 0
    while True:
        final = stop.is_set()  # one last reading after the stop, so the trace covers the end marker
        t0_wall, t0_mono = time.time_ns(), time.monotonic_ns()
        try:
            readings = sensor.read()
        except Exception as exc:  # a failing sensor becomes a recorded gap; the others go on
            errors += 1
            if errors <= 3 or errors % 100 == 0:
                log.warning("sensor %s failed (%d times): %s", sensor.name, errors, exc)
            readings = [Reading("*", "error", math.nan, "", "other")]
        # stamp the midpoint: honest for instant reads and for a slow BMC call alike
        t1_wall, t1_mono = time.time_ns(), time.monotonic_ns()
        writer.write(sensor.name, readings, (t0_wall + t1_wall) // 2, (t0_mono + t1_mono) // 2)
        if first is not None:
            first.set()
        if final:
            return
        next_t += sensor.interval_s
        now = time.monotonic()
        if next_t < now:
            next_t = now  # fell behind (slow read): do not burst to catch up
        stop.wait(next_t - now)


def run_sidecar(out_dir: Path, config: dict, track_pid: int, stop: threading.Event | None = None) -> None:
    """Sample until ``stop`` is set or ``track_pid`` is gone. Writes trace.csv and sidecar.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    sensors, statuses = open_sensors(config, track_pid)
    writer = TraceWriter(out_dir / "trace.csv")
    started_wall_ns, started_mono_ns = time.time_ns(), time.monotonic_ns()
    firsts = [threading.Event() for _ in sensors]
    threads = [threading.Thread(target=_sample_loop, args=(s, writer, stop, ev), name=f"sensor-{s.name}",
                                daemon=True) for s, ev in zip(sensors, firsts, strict=True)]
    for t in threads:
        t.start()
    # every sensor's first reading comes before the ready file, hence before the job's begin marker:
    # a counter read only after the begin would lose the start of the job
    deadline = time.monotonic() + FIRST_READING_WAIT_S
    for ev in firsts:
        ev.wait(max(deadline - time.monotonic(), 0.0))
    meta = {"node": node_metadata(), "pid": os.getpid(), "track_pid": track_pid,
            "sensors": [asdict(s) for s in statuses], "started_wall_ns": started_wall_ns,
            "started_mono_ns": started_mono_ns}
    tmp = out_dir / (READY_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    os.replace(tmp, out_dir / READY_FILE)  # its appearance tells the monitor we are sampling
    parent = os.getppid()
    while not stop.wait(0.25):
        if not psutil.pid_exists(track_pid) or os.getppid() != parent:
            log.warning("monitored process %d is gone: stopping", track_pid)
            break
    stop.set()
    for t in threads:
        t.join(timeout=2.0)  # a hung sensor call is abandoned (daemon thread), not waited for
    for s in sensors:
        try:
            s.close()
        except Exception as exc:
            log.warning("closing sensor %s: %s", s.name, exc)
    writer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m svbench.energy.sidecar")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--track-pid", type=int, required=True)
    parser.add_argument("--config", default="{}", help="energy config as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[sidecar] %(message)s", stream=sys.stderr)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_sidecar(args.out, json.loads(args.config), args.track_pid, stop)


if __name__ == "__main__":
    main()
