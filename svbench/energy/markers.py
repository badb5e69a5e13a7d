"""Phase markers: the workload says when each of its phases starts and stops.

The monitor sets ``SVBENCH_MARKERS`` to a JSON-lines file; code marks phases with
``with phase("epoch", 3): ...``. Without the variable, marking is a no-op, so the same code runs
unmeasured. Each line is flushed and fsync'ed: markers are rare and must survive a SIGKILL.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from svbench.errors import UserError

ENV = "SVBENCH_MARKERS"


def write_marker(path: Path | str, event: str, **fields: object) -> dict:
    """Append one marker (stamped with wall-clock and monotonic ns) and return it."""
    record = {"event": event, "t_wall_ns": time.time_ns(), "t_mono_ns": time.monotonic_ns(), **fields}
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return record


def marking_rank() -> int:
    """This process's rank in a multi-process job (torchrun's ``RANK``, else srun's ``SLURM_PROCID``), 0 alone."""
    for var in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


@contextmanager
def phase(name: str, index: int | None = None, **fields: object) -> Iterator[None]:
    """Mark a phase of the current job; records whether it ended normally or by an exception.

    Only rank 0 of a multi-process job marks (torchrun/srun run every rank through the same code): one
    writer per job, so an epoch is one phase, not one per rank. The join also merges phases that share a
    name and index within an attempt, for markers written otherwise.
    """
    path = os.environ.get(ENV)
    if not path or marking_rank() != 0:
        yield
        return
    write_marker(path, "start", phase=name, index=index, pid=os.getpid(), **fields)
    ok = False
    try:
        yield
        ok = True
    finally:
        write_marker(path, "stop", phase=name, index=index, pid=os.getpid(), ok=ok)


BASELINE = "idle_baseline"  # the monitor's idle sampling before the workload: a phase of its own, not in "job"


@dataclass(frozen=True)
class Phase:
    """One marked span of a job on its attempt's monotonic clock (ns); ``complete`` is false when its stop
    never came (``stop_mono_ns`` None: the join ends it at the attempt's last sample).

    ``session`` is the attempt's sidecar session (its id in the trace), None for markers of a monitor
    that wrote none; every phase of an attempt is on that session's clock.
    """

    name: str
    index: int | None
    start_mono_ns: int
    stop_mono_ns: int | None
    start_wall_ns: int
    stop_wall_ns: int | None
    complete: bool
    attempt: int = 1
    session: str | None = None
    detail: str = ""  # the marker's own fields as JSON ({"backend": "cosine", "trials": "vox1_o"}), "" if none
    pid: int | None = None


@dataclass(frozen=True)
class Attempt:
    """One run of the monitor: its number, its sidecar session, and where its samples start (monotonic ns)."""

    number: int
    session: str | None
    sidecar_started_mono_ns: int


def read_markers(path: Path | str) -> list[dict]:
    """Read markers, skipping a torn last line left by a killed job."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if n == len(lines):
                break  # torn by a kill mid-write
            raise UserError(f"{path}:{n}: not a JSON marker ({exc.msg})") from exc
    return records


def attempts(records: list[dict]) -> list[Attempt]:
    """Every ``begin`` of the markers, in order."""
    out = []
    for rec in records:
        if rec.get("event") == "begin":
            started = rec.get("sidecar_started_mono_ns") or rec["t_mono_ns"]
            out.append(Attempt(len(out) + 1, rec.get("session"), int(started)))
    return out


def phases(records: list[dict]) -> list[Phase]:
    """Pair start/stop markers into phases; the workload of each attempt (begin → end, after the idle
    baseline when there is one) is the phase ``job``.

    A job may have several attempts (a preempted job resumes with a new ``begin``): each attempt is its
    own ``job`` phase, on its own clock; phases a killed attempt left open are incomplete: closed at the
    ``end`` marker when there is one, else left without a stop. Phases of one attempt with the same name
    and index (several ranks marking the same epoch) merge into one span from the first start to the last
    stop.
    """
    out: list[Phase] = []
    open_: dict[tuple, dict] = {}
    attempt, session = 0, None
    job: dict | None = None
    baseline_stop: dict | None = None

    def job_start() -> dict:
        return baseline_stop if baseline_stop is not None else job

    def close_all_open() -> None:
        nonlocal job
        for rec in open_.values():
            out.append(_phase(rec, None, attempt, session))
        open_.clear()
        if job is not None:
            out.append(_phase(job_start(), None, attempt, session, name="job"))
            job = None

    for rec in records:
        event = rec.get("event")
        if event == "begin":
            close_all_open()
            attempt += 1
            session, job, baseline_stop = rec.get("session"), rec, None
        elif event == "end":
            # the workload is gone: what it left open ended (incompletely) no later than this marker
            for rec_open in open_.values():
                out.append(_phase(rec_open, rec, attempt, session, complete=False))
            open_.clear()
            if job is not None:
                out.append(_phase(job_start(), rec, attempt, session, name="job", complete=rec.get("status") == 0))
                job = None
        elif event == "start":
            open_[(rec.get("phase"), rec.get("index"), rec.get("pid"))] = rec
        elif event == "stop":
            start = open_.pop((rec.get("phase"), rec.get("index"), rec.get("pid")), None)
            if start is not None:
                out.append(_phase(start, rec, attempt, session, complete=bool(rec.get("ok", True))))
                if rec.get("phase") == BASELINE:
                    baseline_stop = rec
    close_all_open()
    return sorted(_merge_ranks(out), key=lambda p: (p.attempt, p.start_mono_ns, p.name != "job"))


def _merge_ranks(spans: list[Phase]) -> list[Phase]:
    """One phase per (attempt, name, index, detail) marked by several processes: the union of their spans.
    Repeats within one process (the same phase run twice) stay apart."""
    merged: dict[tuple, Phase] = {}
    out: list[Phase] = []
    for p in spans:
        key = (p.attempt, p.name, p.index, p.detail)
        q = merged.get(key)
        if q is None or q.pid == p.pid or p.name == "job":
            merged[key] = p
            out.append(p)
            continue
        out.remove(q)
        first = p if p.start_mono_ns < q.start_mono_ns else q
        stops = [x for x in (p, q) if x.stop_mono_ns is not None]
        last = max(stops, key=lambda x: x.stop_mono_ns) if len(stops) == 2 else None
        merged[key] = Phase(p.name, p.index, first.start_mono_ns, None if last is None else last.stop_mono_ns,
                            first.start_wall_ns, None if last is None else last.stop_wall_ns,
                            p.complete and q.complete, p.attempt, p.session, p.detail, p.pid)
        out.append(merged[key])
    return out


def _phase(start: dict, stop: dict | None, attempt: int, session: str | None, name: str | None = None,
           complete: bool | None = None) -> Phase:
    return Phase(
        name=name or str(start.get("phase")),
        index=start.get("index"),
        start_mono_ns=int(start["t_mono_ns"]),
        stop_mono_ns=None if stop is None else int(stop["t_mono_ns"]),
        start_wall_ns=int(start["t_wall_ns"]),
        stop_wall_ns=None if stop is None else int(stop["t_wall_ns"]),
        complete=(stop is not None) if complete is None else complete,
        attempt=max(attempt, 1),
        session=session,
        detail=_detail(start),
        pid=start.get("pid"),
    )


_MARKER_KEYS = frozenset({"event", "t_wall_ns", "t_mono_ns", "phase", "index", "pid", "ok"})


def _detail(start: dict) -> str:
    """A start marker's own fields (what the workload passed to ``phase()``) as JSON; "" when none."""
    if start.get("event") != "start":
        return ""
    extra = {k: v for k, v in start.items() if k not in _MARKER_KEYS}
    return json.dumps(extra, sort_keys=True, default=str) if extra else ""
