"""``svbench monitor --out DIR -- COMMAND``: run a command beside the sensor sidecar.

Order matters for honest numbers: the sidecar is sampling before the ``begin`` marker and is stopped
only after the ``end`` marker, so every marked phase lies inside the trace. SIGTERM/SIGINT (SLURM time
limit, preemption, Ctrl-C) are forwarded to the workload so it can checkpoint; the monitor then exits
with the workload's status.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from svbench.energy.markers import ENV, read_markers, write_marker
from svbench.energy.sidecar import READY_FILE
from svbench.energy.slurm import job_context
from svbench.energy.trace import drop_torn_tail

log = logging.getLogger("svbench.monitor")


def _start_sidecar(out_dir: Path, config: dict) -> subprocess.Popen:
    ready = out_dir / READY_FILE
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "svbench.energy.sidecar", "--out", str(out_dir), "--track-pid", str(os.getpid()),
           "--config", json.dumps(config)]
    # its own session: a Ctrl-C meant for the workload must not stop the measurement first
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the sensor sidecar exited with status {proc.returncode} before sampling")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the sensor sidecar did not start within 60 s")
        time.sleep(0.05)
    return proc


def _stop_sidecar(proc: subprocess.Popen) -> None:
    """Stop the sidecar, then everything left in its process group (the sidecar leads a group of its
    own): a sidecar that was killed cannot stop the ipmitool shell it started. The group is killed
    while the sidecar is still an unreaped zombie, so its id cannot have been reused by then."""
    if proc.returncode is None:  # not reaped: the id is still this sidecar's, alive or a zombie
        os.kill(proc.pid, signal.SIGTERM)  # not proc.terminate(), which would reap a zombie first
        if not _exited(proc.pid, timeout_s=15):
            os.kill(proc.pid, signal.SIGKILL)
            _exited(proc.pid, timeout_s=15)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


def _exited(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` has exited, without reaping it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                return True
        except ChildProcessError:  # reaped already
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


RUN_FILES = ("trace.csv", "markers.jsonl", READY_FILE)


def _last_attempt_succeeded(records: list[dict]) -> bool:
    """Whether the last ``begin`` in the markers was followed by an ``end`` with status 0."""
    status = None
    for rec in records:
        if rec.get("event") == "begin":
            status = None
        elif rec.get("event") == "end":
            status = rec.get("status")
    return status == 0


def _prepare_out_dir(out_dir: Path) -> None:
    """Set a finished run aside, or make a killed attempt's markers ready to be appended to.

    A rerun after a run that ended with status 0 is a new measurement: its files go to ``previous/``
    (replacing an older one) so the old energy is not added in. After a failed or killed attempt the
    files stay and the new attempt appends: a preempted job's energy is part of its cost.
    """
    markers = out_dir / "markers.jsonl"
    if not markers.exists():
        return
    drop_torn_tail(markers)  # a workload killed mid-write: the torn line must not become a middle line
    if not _last_attempt_succeeded(read_markers(markers)):
        return
    previous = out_dir / "previous"
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    for name in RUN_FILES:
        if (out_dir / name).exists():
            os.replace(out_dir / name, previous / name)
    log.info("%s: a completed run was moved to %s", out_dir, previous)


def run_monitored(out_dir: Path, command: list[str], config: dict | None = None, baseline_s: float = 0.0) -> int:
    """Run ``command`` measured; returns its exit status (128+N when killed by signal N)."""
    if not command:
        raise ValueError("svbench monitor: no command given after --")
    config = config or {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markers = out_dir / "markers.jsonl"
    _prepare_out_dir(out_dir)
    sidecar = _start_sidecar(out_dir, config)
    child: subprocess.Popen | None = None
    received: list[int] = []
    forwarded: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if child is not None and child.poll() is None:
            forwarded.append(signum)
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 1
    try:
        # a retried or requeued job appends to the same markers: count the attempts already there
        attempt = 1 + sum(1 for rec in read_markers(markers) if rec.get("event") == "begin")
        # where this attempt's samples begin: phases a killed earlier attempt left open end before it
        ready = json.loads((out_dir / READY_FILE).read_text())
        write_marker(markers, "begin", command=command, pid=os.getpid(), attempt=attempt,
                     slurm_job_id=os.environ.get("SLURM_JOB_ID"), session=ready.get("session"),
                     sidecar_started_mono_ns=ready.get("started_mono_ns"),
                     job=job_context())
        if baseline_s > 0:
            write_marker(markers, "start", phase="idle_baseline", index=None, pid=os.getpid())
            time.sleep(baseline_s)
            write_marker(markers, "stop", phase="idle_baseline", index=None, pid=os.getpid(), ok=True)
        if not received:
            env = os.environ | {ENV: str(markers.resolve())}
            try:
                child = subprocess.Popen(command, env=env)
            except OSError as exc:
                raise RuntimeError(f"svbench monitor: cannot run {command[0]!r}: {exc}") from exc
            if received and not forwarded:  # a signal that came while the child was being started
                child.send_signal(received[-1])
            returncode = child.wait()
            status = 128 - returncode if returncode < 0 else returncode
        else:
            status = 128 + received[0]
        write_marker(markers, "end", status=status, signals=received)
    finally:
        _stop_sidecar(sidecar)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
