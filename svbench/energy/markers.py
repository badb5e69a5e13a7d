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

ENV = "SVBENCH_MARKERS"


def write_marker(path: Path | str, event: str, **fields: object) -> dict:
    """Append one marker (stamped with wall-clock and monotonic ns) and return it."""
    record = {"event": event, "t_wall_ns": time.time_ns(), "t_mono_ns": time.monotonic_ns(), **fields}
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return record


@contextmanager
def phase(name: str, index: int | None = None, **fields: object) -> Iterator[None]:
    """Mark a phase of the current job; records whether it ended normally or by an exception."""
    path = os.environ.get(ENV)
    if not path:
        yield
        return
    write_marker(path, "start", phase=name, index=index, pid=os.getpid(), **fields)
    ok = False
    try:
        yield
        ok = True
    finally:
        write_marker(path, "stop", phase=name, index=index, pid=os.getpid(), ok=ok)


@dataclass(frozen=True)
class Phase:
    """One marked span of a job, in monotonic ns; ``complete`` is false when its stop never came."""

    name: str
    index: int | None
    start_mono_ns: int
    stop_mono_ns: int | None
    start_wall_ns: int
    stop_wall_ns: int | None
    complete: bool
    attempt: int = 1
    # a phase whose stop never came, cut short by a new attempt: it ended before this (monotonic ns) time,
    # when the next attempt's sidecar started sampling; None: it ended with the trace
    open_until_mono_ns: int | None = None


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
            raise ValueError(f"{path}:{n}: not a JSON marker ({exc.msg})") from exc
    return records


def phases(records: list[dict]) -> list[Phase]:
    """Pair start/stop markers into phases; the whole job (begin → end) is the phase ``job``.

    A job may have several attempts (a preempted job resumes with a new ``begin``): each attempt is
    its own ``job`` phase and phases left open by a killed attempt are closed as incomplete: at the
    ``end`` marker when there is one, else left without a stop (the join closes them at the attempt's
    last sample, before ``open_until_mono_ns``).
    """
    out: list[Phase] = []
    open_: dict[tuple, dict] = {}
    attempt = 0
    job: dict | None = None

    def close_all_open(until: int | None = None) -> None:
        nonlocal job
        for rec in open_.values():
            out.append(_phase(rec, None, attempt, until=until))
        open_.clear()
        if job is not None:
            out.append(_phase(job, None, attempt, name="job", until=until))
            job = None

    for rec in records:
        event = rec.get("event")
        if event == "begin":
            close_all_open(int(rec.get("sidecar_started_mono_ns") or rec["t_mono_ns"]))
            attempt += 1
            job = rec
        elif event == "end":
            # the workload is gone: what it left open ended (incompletely) no later than this marker
            for rec_open in open_.values():
                out.append(_phase(rec_open, rec, attempt, complete=False))
            open_.clear()
            if job is not None:
                out.append(_phase(job, rec, attempt, name="job", complete=rec.get("status") == 0))
                job = None
        elif event == "start":
            open_[(rec.get("phase"), rec.get("index"), rec.get("pid"))] = rec
        elif event == "stop":
            start = open_.pop((rec.get("phase"), rec.get("index"), rec.get("pid")), None)
            if start is not None:
                out.append(_phase(start, rec, max(attempt, 1), complete=bool(rec.get("ok", True))))
    close_all_open()
    return sorted(out, key=lambda p: (p.start_mono_ns, p.name != "job"))


def _phase(start: dict, stop: dict | None, attempt: int, name: str | None = None,
           complete: bool | None = None, until: int | None = None) -> Phase:
    return Phase(
        name=name or str(start.get("phase")),
        index=start.get("index"),
        start_mono_ns=int(start["t_mono_ns"]),
        stop_mono_ns=None if stop is None else int(stop["t_mono_ns"]),
        start_wall_ns=int(start["t_wall_ns"]),
        stop_wall_ns=None if stop is None else int(stop["t_wall_ns"]),
        complete=(stop is not None) if complete is None else complete,
        attempt=max(attempt, 1),
        open_until_mono_ns=until if stop is None else None,
    )
