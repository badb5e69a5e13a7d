"""``svbench monitor --out DIR --config FILE -- COMMAND``: run a command beside the sensor sidecar.

Order matters for honest numbers: the sidecar is sampling before the ``begin`` marker and is stopped
only after the ``end`` marker, so every marked phase lies inside the trace. SIGTERM/SIGINT (SLURM time
limit, preemption, Ctrl-C) are forwarded to the workload so it can checkpoint; the monitor then exits
with the workload's status.

Whatever kills the monitor, the workload does not outlive it: the workload leads a process group of
its own and gets SIGKILL when the monitor dies (``PR_SET_PDEATHSIG``), and the sidecar, which watches
the monitor, ends that group (``workload.json``). One monitor at a time measures a folder: it holds an
``flock`` on ``DIR/monitor.lock`` (shared with its sidecar, so a killed monitor's sidecar finishes
before the next attempt appends to the trace). The energy config comes as a file, never as argv.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from svbench.errors import UserError
from svbench.fileio import atomic_write
from svbench.instrument import orphans
from svbench.instrument.config import EnergyConfig
from svbench.instrument.markers import BASELINE, ENV, Marker, phase, read_markers, write_marker
from svbench.instrument.nodes import MARKERS, NODES_ENV, RANK_ENV, TRACES, WRITER_ENV, node_dir, this_node
from svbench.instrument.nodes import node_rank as node_rank_of
from svbench.instrument.orphans import die_with_parent
from svbench.instrument.sidecar import READY_FILE, READY_WAIT_S, WORKLOAD_FILE
from svbench.instrument.slurm import job_context
from svbench.instrument.trace import drop_torn_tail

log = logging.getLogger("svbench.monitor")


LOCK_FILE = "monitor.lock"
CONFIG_FILE = "sidecar_config.json"
LOCK_WAIT_S = 30.0  # for the sidecar of a killed monitor to notice and finish (it checks every second)


def _lock(out_dir: Path) -> int:
    """Hold ``out_dir/monitor.lock`` for this run; a second monitor on the folder is a UserError naming the
    holder. A holder whose monitor is gone (its sidecar still finishing) is waited for, briefly."""
    path = out_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(path)
            alive = holder.get("host") == socket.gethostname() and _pid_alive(int(holder.get("pid", 0)))
            if alive or time.monotonic() > deadline:
                os.close(fd)
                who = f"svbench monitor PID {holder.get('pid', '?')} on {holder.get('host', '?')}"
                raise UserError(f"{out_dir}: already being measured by {who} (lock {path}); "
                                "one monitor per folder") from None
            time.sleep(0.2)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                              "since_wall_ns": time.time_ns()}).encode(), 0)
    return fd


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _start_sidecar(out_dir: Path, config: EnergyConfig, lock_fd: int) -> subprocess.Popen:
    ready = out_dir / READY_FILE
    ready.unlink(missing_ok=True)
    config_file = out_dir / CONFIG_FILE
    with atomic_write(config_file, private=True) as f:  # the BMC user and the tool's arguments: owner only
        f.write(json.dumps(config.to_dict()))
    cmd = [sys.executable, "-m", "svbench.instrument.sidecar", "--out", str(out_dir), "--track-pid", str(os.getpid()),
           "--config-file", str(config_file)]
    # its own session: a Ctrl-C meant for the workload must not stop the measurement first; the lock's
    # descriptor goes with it, so the folder stays locked until the sidecar has ended too
    proc = subprocess.Popen(cmd, start_new_session=True, pass_fds=(lock_fd,), stderr=subprocess.PIPE, text=True)
    said: deque[str] = deque(maxlen=20)  # the last lines: what a failed start says; bounded for a week-long job
    threading.Thread(target=_relay, args=(proc, said), name="sidecar-stderr", daemon=True).start()
    deadline = time.monotonic() + READY_WAIT_S
    while not ready.exists():
        if proc.poll() is not None:
            time.sleep(0.1)  # the relay's last lines
            error = next((ln for ln in reversed(said) if "error: " in ln), said[-1] if said else "")
            if proc.returncode == 2 and error:  # a config the sensors refuse: the user's to fix
                raise UserError(error.split("error: ", 1)[-1].strip())
            raise RuntimeError(f"the sensor sidecar exited with status {proc.returncode} before sampling: {error}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the sensor sidecar did not start within {READY_WAIT_S:g} s")
        time.sleep(0.05)
    return proc


def _relay(proc: subprocess.Popen, said: deque[str]) -> None:
    """The sidecar's stderr to ours, line by line; kept for the message of a sidecar that failed."""
    for line in proc.stderr:
        sys.stderr.write(line)
        said.append(line)


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


def _wait_watching(child: subprocess.Popen, sidecar: subprocess.Popen) -> int:
    """Wait for the workload; if the sidecar dies meanwhile, clear its process group at once (a tool it
    left hanging must not live on for the rest of the job) and say that the measurement stopped."""
    watching = True
    while True:
        try:
            return child.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        if watching and sidecar.returncode is None and _exited(sidecar.pid, timeout_s=0):
            watching = False
            try:
                os.killpg(sidecar.pid, signal.SIGKILL)  # not reaped yet: the group id is still its own
            except (ProcessLookupError, PermissionError):
                pass
            log.warning("the sensor sidecar ended during the job: the rest of the job is not measured")


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


RUN_FILES = (*TRACES, MARKERS, READY_FILE)


def _last_attempt_succeeded(records: list[Marker]) -> bool:
    """Whether the last ``begin`` in the markers was followed by an ``end`` with status 0."""
    status = None
    for rec in records:
        if rec.event == "begin":
            status = None
        elif rec.event == "end":
            status = rec.status
    return status == 0


def _prepare_out_dir(out_dir: Path) -> None:
    """Set a finished run aside, or make a killed attempt's markers ready to be appended to.

    A rerun after a run that ended with status 0 is a new measurement: its files go to ``previous/``
    (replacing an older one) so the old energy is not added in. After a failed or killed attempt the
    files stay and the new attempt appends: a preempted job's energy is part of its cost.
    """
    markers = out_dir / MARKERS
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


def read_energy_config(path: Path) -> EnergyConfig:
    """The energy config of ``svbench monitor --config FILE`` (JSON or YAML: the config's ``energy``
    block, or a whole study config that has one), checked by the schema the workflow uses."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the energy config ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: not a JSON or YAML energy config ({getattr(exc, 'problem', exc)})") from None
    data = data or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: the energy config must be a mapping of keys")
    if isinstance(data.get("energy"), dict):
        data = data["energy"]
    try:
        return EnergyConfig.from_dict(data)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def run_monitored(out_dir: Path, command: list[str], config: EnergyConfig | None = None,
                  baseline_s: float | None = None, nodes: int = 1, node_rank: int | None = None) -> int:
    """Run ``command`` measured; returns its exit status (128+N when killed by signal N).

    In a job on ``nodes`` > 1 nodes, one monitor runs on each node (``srun --ntasks-per-node=1``) and measures
    that node into its own folder, ``out_dir/node{K}`` (:mod:`svbench.instrument.nodes`; K: ``node_rank``, else
    ``$SLURM_NODEID``); the workload learns K from ``$SVBENCH_NODE_RANK`` (``svbench launch``).

    ``baseline_s`` (None: the config's ``baseline_s``) seconds of idle sampling come before the command.
    """
    if not command:
        raise UserError("svbench monitor: no command given after --")
    if nodes < 1:
        raise UserError(f"svbench monitor --nodes: expected at least 1, got {nodes}")
    config = config or EnergyConfig()
    baseline_s = config.baseline_s if baseline_s is None else baseline_s
    if not (math.isfinite(baseline_s) and baseline_s >= 0):
        raise UserError(f"svbench monitor --baseline: must be a finite number of seconds >= 0, got {baseline_s!r}")
    rank = node_rank_of(nodes, node_rank)
    out_dir = Path(node_dir(out_dir, rank, nodes))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock(out_dir)
    except OSError as exc:  # read-only, a file in the way, no space: the user's to fix
        raise UserError(f"{out_dir}: cannot write the measurement folder ({exc.strerror})") from None
    try:
        return _run_locked(out_dir, command, config, baseline_s, lock_fd, (rank, nodes))
    finally:
        os.close(lock_fd)


class _Interrupted(Exception):
    """A signal came during the idle baseline."""


def _idle(seconds: float, received: list[int]) -> None:
    """Sleep ``seconds`` of idle baseline, or until a signal arrives (SLURM's KillWait is 30 s by default: a
    TERM must end the run now, not after the baseline); raises _Interrupted then."""
    deadline = time.monotonic() + seconds
    while not received:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))
    raise _Interrupted


def _run_locked(out_dir: Path, command: list[str], config: EnergyConfig, baseline_s: float, lock_fd: int,
                node: tuple[int, int]) -> int:
    markers = out_dir / MARKERS
    _prepare_out_dir(out_dir)
    sidecar = _start_sidecar(out_dir, config, lock_fd)
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
        attempt = 1 + sum(1 for rec in read_markers(markers) if rec.event == "begin")
        # this attempt's sidecar session: its samples, on this node's clock, are the ones its phases join
        ready = json.loads((out_dir / READY_FILE).read_text())
        write_marker(markers, "begin", command=command, pid=os.getpid(), attempt=attempt,
                     slurm_job_id=os.environ.get("SLURM_JOB_ID"), session=ready.get("session"),
                     sidecar_started_mono_ns=ready.get("started_mono_ns"),
                     job=job_context(), node=node[0], nodes=node[1])
        if baseline_s > 0:
            try:
                with phase(BASELINE, markers_path=markers):
                    _idle(baseline_s, received)
            except _Interrupted:
                pass  # the stop marker says ok: false; the signal's status ends the run below
        if not received:
            # the markers are this node's (its clock): the workload's first process here writes them, and the
            # launcher starts this node's processes as node rank node[0]
            env = os.environ | {ENV: str(markers.resolve()), WRITER_ENV: this_node(), RANK_ENV: str(node[0]),
                                NODES_ENV: str(node[1])}
            try:
                # a group of its own (the sidecar can end it all) that dies with the monitor
                child = subprocess.Popen(command, env=env, process_group=0,
                                         preexec_fn=die_with_parent if orphans.AVAILABLE else None)
            except OSError as exc:
                raise UserError(f"svbench monitor: cannot run {command[0]!r}: {exc.strerror}") from None
            (out_dir / WORKLOAD_FILE).write_text(json.dumps({"pid": child.pid, "pgid": child.pid}))
            if received and not forwarded:  # a signal that came while the child was being started
                child.send_signal(received[-1])
            returncode = _wait_watching(child, sidecar)
            (out_dir / WORKLOAD_FILE).unlink(missing_ok=True)
            status = 128 - returncode if returncode < 0 else returncode
        else:
            status = 128 + received[0]
        write_marker(markers, "end", status=status, signals=received)
    finally:
        _stop_sidecar(sidecar)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
