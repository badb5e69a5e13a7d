"""Phase markers: the workload says when each of its phases starts and stops.

The monitor sets ``SVBENCH_MARKERS`` to a JSON-lines file; code marks phases with
``with phase("epoch", 3): ...``. Without the variable, marking is a no-op, so the same code runs
unmeasured. Each line is flushed and fsync'ed: markers are rare and must survive a SIGKILL.

This module owns the file's protocol: :class:`Marker` is one line, :func:`read_markers` the one reader
(the monitor, the join, the study and the benchmarks all read through it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from svbench.errors import UserError
from svbench.instrument.nodes import WRITER_ENV, this_node

ENV = "SVBENCH_MARKERS"


@dataclass(frozen=True)
class Marker:
    """One line of ``markers.jsonl``.

    ``event``: ``begin``/``end`` (the monitor: one attempt of the job) or ``start``/``stop`` (a phase).
    Typed keys: ``phase``, ``index`` and ``pid`` of a phase, ``ok`` of its stop (false: ended by an
    exception); ``session`` (the sidecar's), ``attempt``, ``sidecar_started_mono_ns``, ``slurm_job_id``,
    ``job`` (the SLURM job context), ``node`` and ``nodes`` (this node's rank in a job on that many) of a
    begin; ``status`` of an end. Every other key of the line
    (``command``, ``signals``, what the workload passed to ``phase()``) is in ``extra``.
    """

    event: str
    t_wall_ns: int
    t_mono_ns: int
    phase: str | None = None
    index: int | None = None
    pid: int | None = None
    ok: bool | None = None
    session: str | None = None
    attempt: int | None = None
    sidecar_started_mono_ns: int | None = None
    slurm_job_id: str | None = None
    job: dict | None = None
    node: int | None = None
    nodes: int | None = None
    status: int | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, record: dict) -> Marker:
        """A marker from its JSON object; KeyError/TypeError/ValueError when a stamp is missing or not a number."""
        typed = {name: record.get(name) for name in _TYPED}
        extra = {k: v for k, v in record.items() if k not in _TYPED and k not in _STAMPS}
        return cls(event=str(record["event"]), t_wall_ns=int(record["t_wall_ns"]), t_mono_ns=int(record["t_mono_ns"]),
                   **typed, extra=extra)

    def to_json(self) -> dict:
        """The line's JSON object: the stamps, the typed keys that are set, the extra ones."""
        typed = {name: getattr(self, name) for name in _TYPED if getattr(self, name) is not None}
        return {"event": self.event, "t_wall_ns": self.t_wall_ns, "t_mono_ns": self.t_mono_ns, **typed, **self.extra}

    def get(self, key: str, default: object = None) -> object:
        """One key of the line, typed or extra, as ``dict.get`` would give it (for readers that take any key)."""
        if key in _STAMPS or key in _TYPED:
            value = getattr(self, key)
            return default if value is None else value
        return self.extra.get(key, default)


_STAMPS = ("event", "t_wall_ns", "t_mono_ns")
_TYPED = tuple(f.name for f in dataclasses.fields(Marker) if f.name not in _STAMPS and f.name != "extra")


def write_marker(path: Path | str, event: str, **fields: object) -> Marker:
    """Append one marker (stamped with wall-clock and monotonic ns) and return it."""
    record = {"event": event, "t_wall_ns": time.time_ns(), "t_mono_ns": time.monotonic_ns(), **fields}
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return Marker.from_json(record)


def read_markers(path: Path | str) -> list[Marker]:
    """Every marker of ``path`` in file order ([] when there is none), skipping a torn last line left by a
    killed job; UserError naming the file and line of any other line that is not a marker."""
    path = Path(path)
    if not path.exists():
        return []
    markers = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if n == len(lines):
                break  # torn by a kill mid-write
            raise UserError(f"{path}:{n}: not a JSON marker ({exc.msg})") from exc
        try:
            markers.append(Marker.from_json(record))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{path}:{n}: not a marker (needs event, t_wall_ns and t_mono_ns; {exc!r})") from None
    return markers


def node_sharing(*markers_paths: Path | str) -> str:
    """Whether every attempt of a job had its node(s) alone, from the job context in its begin markers (every
    node's markers of a multi-node job)."""
    contexts = [m.job or {} for path in markers_paths for m in read_markers(path) if m.event == "begin"]
    if not contexts:
        return "unknown"
    if not all(c.get("slurm_job_id") for c in contexts):
        return "shared node: not under SLURM, other processes may share it"
    if all(c.get("exclusive") is True for c in contexts):
        return "exclusive node"
    if any(c.get("exclusive") is False for c in contexts):
        return "shared node: node-level figures include other jobs"
    return "SLURM job, exclusivity unknown"


def marking_rank() -> int:
    """This process's rank on its node (torchrun's ``LOCAL_RANK``, else srun's ``SLURM_LOCALID``), 0 alone: each
    node's markers are written by that node's first process, on that node's clock."""
    for var in ("LOCAL_RANK", "SLURM_LOCALID"):
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


def marks_here() -> bool:
    """Whether this process writes ``$SVBENCH_MARKERS``: local rank 0 on the node whose monitor owns the file.
    A process on another node (srun tasks spread over nodes under one monitor) never writes there: its
    monotonic stamps are another clock's."""
    owner = os.environ.get(WRITER_ENV)
    return marking_rank() == 0 and (not owner or owner == this_node())


@contextmanager
def phase(name: str, index: int | None = None, *, sync: Callable[[], object] | None = None,
          markers_path: Path | str | None = None, **fields: object) -> Iterator[None]:
    """Mark a phase of the current job; records whether it ended normally or by an exception.

    ``sync`` runs at both edges before the time stamp, so that work queued asynchronously (CUDA kernels:
    ``torch.cuda.synchronize``) falls inside the phase it was issued in. ``markers_path`` writes there
    whatever the rank (the monitor's own baseline); by default the file is ``$SVBENCH_MARKERS``.

    Only local rank 0 of a multi-process job marks, and only on the node whose monitor owns the file
    (torchrun/srun run every rank through the same code): one writer per node, so an epoch is one phase
    per node, each on its node's clock. The join also merges phases that share a
    name and index within an attempt, for markers written otherwise.
    """
    path = markers_path or os.environ.get(ENV)
    if not path or (markers_path is None and not marks_here()):
        yield
        return
    if sync is not None:
        sync()
    write_marker(path, "start", phase=name, index=index, pid=os.getpid(), **fields)
    ok = False
    try:
        yield
        ok = True
    finally:
        if sync is not None:
            sync()
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


def check_attempts(records: list[Marker], path: Path | str) -> None:
    """UserError when one attempt's ``begin`` is there twice: the same line copied (the same stamps), or two
    begins of one sidecar session. Either would count one attempt's energy twice."""
    seen: dict[object, int] = {}
    begins = [rec for rec in records if rec.event == "begin"]
    for number, rec in enumerate(begins, 1):
        stamps = (rec.t_wall_ns, rec.t_mono_ns)
        if stamps in seen:
            raise UserError(f"{path}: a 'begin' line appears twice (attempts {seen[stamps]} and {number}, the same "
                            "time stamps): one attempt would be counted twice; remove the copy")
        seen[stamps] = number
        if rec.session is not None:
            if rec.session in seen:
                raise UserError(f"{path}: attempts {seen[rec.session]} and {number} both begin session "
                                f"{rec.session!r}: one sidecar session would be counted as two attempts")
            seen[rec.session] = number


def attempts(records: list[Marker]) -> list[Attempt]:
    """Every ``begin`` of the markers, in order."""
    out = []
    for rec in records:
        if rec.event == "begin":
            started = rec.sidecar_started_mono_ns or rec.t_mono_ns
            out.append(Attempt(len(out) + 1, rec.session, int(started)))
    return out


def phases(records: list[Marker]) -> list[Phase]:
    """Pair start/stop markers into phases; the workload of each attempt (begin → end, after the idle
    baseline when there is one) is the phase ``job``.

    A job may have several attempts (a preempted job resumes with a new ``begin``): each attempt is its
    own ``job`` phase, on its own clock; phases a killed attempt left open are incomplete: closed at the
    ``end`` marker when there is one, else left without a stop. Phases of one attempt with the same name
    and index (several ranks marking the same epoch) merge into one span from the first start to the last
    stop.
    """
    out: list[Phase] = []
    open_: dict[tuple, Marker] = {}
    attempt, session = 0, None
    job: Marker | None = None
    baseline_stop: Marker | None = None

    def job_start() -> Marker:
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
        event = rec.event
        if event == "begin":
            close_all_open()
            attempt += 1
            session, job, baseline_stop = rec.session, rec, None
        elif event == "end":
            # the workload is gone: what it left open ended (incompletely) no later than this marker
            for rec_open in open_.values():
                out.append(_phase(rec_open, rec, attempt, session, complete=False))
            open_.clear()
            if job is not None:
                out.append(_phase(job_start(), rec, attempt, session, name="job", complete=rec.status == 0))
                job = None
        elif event == "start":
            open_[(rec.phase, rec.index, rec.pid)] = rec
        elif event == "stop":
            start = open_.pop((rec.phase, rec.index, rec.pid), None)
            if start is not None:
                out.append(_phase(start, rec, attempt, session, complete=rec.ok is not False))
                if rec.phase == BASELINE:
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


def _phase(start: Marker, stop: Marker | None, attempt: int, session: str | None, name: str | None = None,
           complete: bool | None = None) -> Phase:
    return Phase(
        name=name or str(start.phase),
        index=start.index,
        start_mono_ns=start.t_mono_ns,
        stop_mono_ns=None if stop is None else stop.t_mono_ns,
        start_wall_ns=start.t_wall_ns,
        stop_wall_ns=None if stop is None else stop.t_wall_ns,
        complete=(stop is not None) if complete is None else complete,
        attempt=max(attempt, 1),
        session=session,
        detail=_detail(start),
        pid=start.pid,
    )


_MARKER_KEYS = frozenset({"event", "t_wall_ns", "t_mono_ns", "phase", "index", "pid", "ok"})


def _detail(start: Marker) -> str:
    """A start marker's own fields (what the workload passed to ``phase()``) as JSON; "" when none."""
    if start.event != "start":
        return ""
    extra = {k: v for k, v in start.to_json().items() if k not in _MARKER_KEYS}
    return json.dumps(extra, sort_keys=True, default=str) if extra else ""
