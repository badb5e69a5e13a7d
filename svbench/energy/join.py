"""Join a sensor trace to the job's phase markers: energy per phase and channel, one attempt at a time.

**Attempts are sessions.** Every sidecar run opens a session in the trace (a row with its id) and the
monitor writes that id into the attempt's ``begin`` marker. An attempt's phases are joined only with its
own session's samples, on that session's monotonic clock: a job requeued on another node (another boot,
another clock) is two sessions, never one timeline. Wall-clock time only orders attempts and places them
in the calendar. Traces of svbench versions that wrote no session rows are cut into sessions where each
attempt's sidecar started (``sidecar_started_mono_ns`` of its ``begin``), which is right on one node.

**The integral.** For each channel the samples form intervals. A counter interval holds the counter's
difference (spread linearly over the interval); a power interval the trapezoid of its two readings. A
phase gets the part of every interval inside it. An interval is *not counted* (no energy, no coverage)
when the counter broke in it (the sensor wrote a ``counter_break`` row: a reset, a step back, a possible
second wrap), when a counter falls (a sidecar of an older version that restarted from zero), or when the
monotonic clock runs backwards (two clocks in one session). ``coverage`` is the share of the phase that
lies in counted intervals no longer than ``GAP_PERIODS`` sample periods; every row says which method it
used, whether the phase was long enough for the sensor to resolve it (three periods) and whether it is
estimated, and ``notes`` says what was not counted.

**Bounded memory.** The trace is streamed in chunks (:func:`svbench.instrument.trace.iter_trace`): each
chunk's intervals are added to running sums per phase, so memory does not grow with the trace's length.

Beside every phase: ``rest_of_job`` (the job minus the union of its marked phases, never negative), the
idle baseline as its own phase before the job, and for every row its idle (idle W × seconds) and dynamic
energy; and ``rest_of_node`` rows: the node meter minus GPU + CPU + DRAM (see :func:`closure`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.energy.carbon import Intensity
from svbench.errors import UserError
from svbench.fileio import atomic_write, read_table
from svbench.instrument.markers import (
    BASELINE,
    Attempt,
    Marker,
    Phase,
    attempts,
    check_attempts,
    phases,
    read_markers,
)
from svbench.instrument.sensors.counter import BREAK_QUANTITY
from svbench.instrument.slurm import consumed_energy_j
from svbench.instrument.trace import SESSION_QUANTITY, iter_trace

log = logging.getLogger("svbench.energy")

GAP_PERIODS = 3.0  # a hole longer than this many median periods counts as "no samples"
REST_OF_JOB = "rest_of_job"
CLOSURE_TOLERANCE = 0.05  # node meter vs GPU + CPU + DRAM: NVML's documented ±5 % (REFERENCE §6), BMCs alike
COMPONENTS = ("gpu", "cpu", "dram")
# the rows of one phase name that are one span (on one node: a node meter's closure is that node's)
SPAN = ["node", "attempt", "index", "detail", "t_start_wall_ns"]
# ``node``: the node the row was measured on (node0 … of a job on ``nodes`` nodes; ``all``: the job's sum over its
# nodes, svbench.energy.node_join); ``partial``: a sum that lacks a node (named in ``notes``)
ENERGY_COLUMNS = [
    "phase", "index", "detail", "attempt", "complete", "t_start_wall_ns", "t_end_wall_ns", "seconds", "sensor",
    "channel", "component", "method", "energy_j", "coverage", "resolved", "estimated", "idle_w", "idle_j", "dynamic_j",
    "intensity_g_per_kwh", "samples", "notes", "node", "nodes", "partial",
]
FIRST_NODE = "node0"  # the node of a one-node job's rows
JOB_NODE = "all"  # the rows of the whole job: its sums over nodes, and SLURM's figure

# intensity at wall-clock ns (array in, gCO2e/kWh array out); None: the join weights no carbon
IntensityAt = Callable[[np.ndarray], np.ndarray]


@dataclass
class _Target:
    """One row-to-be of energy.csv before its channel is known: a phase, or the rest of a job."""

    phase: Phase
    name: str
    spans: list[tuple[float, float]]  # seconds on the session clock; an open end is +inf until the end


@dataclass
class _Channel:
    """Running sums of one channel of one session over every target of that session."""

    quantity: str
    component: str
    estimated: bool
    a: np.ndarray  # span starts (s), one per span of every target
    b: np.ndarray  # span ends (s)
    owner: np.ndarray  # the target of each span
    n_targets: int
    weigh: bool
    energy: np.ndarray = field(init=False)
    covered: np.ndarray = field(init=False)
    weighted: np.ndarray = field(init=False)  # Σ energy × intensity (J·g/kWh)
    samples: np.ndarray = field(init=False)  # readings inside each target
    period: float | None = None
    first_t: float = math.inf
    last_t: float = -math.inf
    prev: tuple[float, float, float] | None = None  # the last sample: (t s, value, wall ns)
    breaks: int = 0
    jumps: int = 0

    def __post_init__(self) -> None:
        self.energy = np.zeros(self.n_targets)
        self.covered = np.zeros(self.n_targets)
        self.weighted = np.zeros(self.n_targets)
        self.samples = np.zeros(self.n_targets, dtype=np.int64)

    def feed(self, t: np.ndarray, v: np.ndarray, wall: np.ndarray, broken: np.ndarray,
             intensity_at: IntensityAt | None) -> None:
        """Add the samples of one chunk (in file order); ``broken``: the interval ending at this sample broke."""
        for piece in np.split(t, np.flatnonzero(np.diff(t) < 0) + 1):  # sorted runs (a clock step splits)
            inside = np.searchsorted(piece, self.b, side="right") - np.searchsorted(piece, self.a, side="left")
            np.add.at(self.samples, self.owner, inside)
        if self.prev is not None:
            t = np.concatenate(([self.prev[0]], t))
            v = np.concatenate(([self.prev[1]], v))
            wall = np.concatenate(([self.prev[2]], wall))
            broken = np.concatenate(([False], broken))
        self.prev = (float(t[-1]), float(v[-1]), float(wall[-1]))
        self.breaks += int(broken[1:].sum())
        # a backwards step of the monotonic clock: two clocks in one session; the step is not counted
        cuts = np.flatnonzero(np.diff(t) < 0) + 1
        self.jumps += len(cuts)
        for lo, hi in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [len(t)])), strict=True):
            if hi - lo >= 2:
                self._run(t[lo:hi], v[lo:hi], wall[lo:hi], broken[lo:hi], intensity_at)
            if hi - lo >= 1:
                self.first_t, self.last_t = min(self.first_t, t[lo]), max(self.last_t, t[hi - 1])

    def _run(self, t: np.ndarray, v: np.ndarray, wall: np.ndarray, broken: np.ndarray,
             intensity_at: IntensityAt | None) -> None:
        dt = np.diff(t)
        if self.counter:
            e = np.diff(v)
            falls = e < 0  # an older sidecar's counters restarting from zero: unknown, not negative energy
            self.breaks += int(falls.sum())
            bad = broken[1:] | falls
        else:
            e = (v[:-1] + v[1:]) / 2 * dt
            bad = broken[1:].copy()
        bad |= dt <= 0
        e = np.where(bad, 0.0, e)
        if self.period is None:
            self.period = float(np.median(dt[dt > 0])) if (dt > 0).any() else None
        ok = ~bad & (dt <= GAP_PERIODS * (self.period or math.inf))
        safe_dt = np.where(dt > 0, dt, 1.0)
        level = intensity_at((wall[:-1] + wall[1:]) / 2) if intensity_at is not None else np.zeros(len(dt))
        cum_e = np.concatenate(([0.0], np.cumsum(e)))
        cum_c = np.concatenate(([0.0], np.cumsum(np.where(ok, dt, 0.0))))
        cum_w = np.concatenate(([0.0], np.cumsum(e * level)))

        def at(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            """Energy, covered seconds and weighted energy from t[0] to each x (clamped to the samples)."""
            x = np.clip(x, t[0], t[-1])
            k = np.clip(np.searchsorted(t, x, side="right") - 1, 0, len(dt) - 1)
            into = x - t[k]
            frac = into / safe_dt[k]
            if self.counter:
                part = e[k] * frac
            else:
                part = np.where(bad[k], 0.0, into * (2 * v[k] + (v[k + 1] - v[k]) * frac) / 2)
            return cum_e[k] + part, cum_c[k] + np.where(ok[k], into, 0.0), cum_w[k] + part * level[k]

        e_b, c_b, w_b = at(self.b)
        e_a, c_a, w_a = at(self.a)
        np.add.at(self.energy, self.owner, e_b - e_a)
        np.add.at(self.covered, self.owner, c_b - c_a)
        np.add.at(self.weighted, self.owner, w_b - w_a)

    @property
    def counter(self) -> bool:
        return self.quantity == "energy"


def _targets(attempt_phases: list[Phase]) -> list[_Target]:
    """The attempt's phases, each with its span, and ``rest_of_job``: the job outside the union of the rest."""
    out = [_Target(ph, ph.name, [(ph.start_mono_ns / 1e9, math.inf if ph.stop_mono_ns is None
                                  else ph.stop_mono_ns / 1e9)]) for ph in attempt_phases]
    job = next((t for t in out if t.name == "job"), None)
    marked = [t for t in out if t.name not in ("job", BASELINE)]
    if job is not None and marked:
        out.append(_Target(job.phase, REST_OF_JOB, _outside(job.spans[0], [s for t in marked for s in t.spans])))
    return out


def _outside(span: tuple[float, float], inner: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """``span`` minus the union of ``inner``, as sorted disjoint spans."""
    a, b = span
    pieces, at = [], a
    for lo, hi in sorted(inner):
        if lo > at:
            pieces.append((at, min(lo, b)))
        at = max(at, hi)
        if at >= b:
            break
    if at < b:
        pieces.append((at, b))
    return [(lo, hi) for lo, hi in pieces if hi > lo]


def _session_keys(chunk: pd.DataFrame, legacy_starts: np.ndarray, legacy_keys: list[str]) -> np.ndarray:
    """The session of every row: its own id, or for rows of a trace without session rows, the attempt
    whose sidecar had started last by the row's time."""
    keys = chunk["session"].to_numpy(dtype=object)
    old = keys == ""
    if old.any() and len(legacy_keys):
        k = np.searchsorted(legacy_starts, chunk["t_mono_ns"].to_numpy()[old], side="right") - 1
        keys = keys.copy()
        keys[old] = np.asarray(legacy_keys, dtype=object)[np.clip(k, 0, len(legacy_keys) - 1)]
    return keys


def join_trace(trace_path: Path, job_phases: list[Phase], job_attempts: list[Attempt],
               intensity_at: IntensityAt | None = None, quantities: tuple[str, ...] = ("energy", "power"),
               counter_first: bool = True) -> pd.DataFrame:
    """Energy per phase × channel of every attempt, streaming the trace. Output times: s and wall-clock ns.

    ``quantities``: what is integrated (a counter ``energy``, anything else as power in W); with
    ``counter_first`` a channel's power rows are left out where it has a counter (they would count twice).
    """
    sessions = _Sessions(job_phases, job_attempts)
    channels, last_t = _integrate(trace_path, sessions, intensity_at, quantities)
    # a channel with a counter is integrated from it; its power readings (if any) would double count
    counters = {(k, s, c) for k, s, c, q in channels if q == "energy"}
    rows: list[dict] = []
    for (key, sensor, channel, quantity), ch in sorted(channels.items()):
        if counter_first and quantity != "energy" and (key, sensor, channel) in counters:
            continue
        for i, target in enumerate(sessions.targets[key]):
            row = _row(target, ch, i, last_t.get(key), sensor, channel)
            if row["seconds"] > 0 or target.name == REST_OF_JOB:  # a phase of no length has no energy to give
                rows.append(row)
    frame = pd.DataFrame(rows, columns=ENERGY_COLUMNS).sort_values(["attempt", "t_start_wall_ns"], kind="stable")
    frame["index"] = frame["index"].astype("Int64")  # an epoch number, not a float; empty for unnumbered phases
    frame = _with_idle(frame)
    return typed_columns(pd.concat([frame, closure_rows(frame)], ignore_index=True))


class _Sessions:
    """The job's phases by trace session: each attempt's own session id when the trace has it, else a legacy key
    placed by its sidecar's start; per session its targets and their spans as arrays."""

    def __init__(self, job_phases: list[Phase], job_attempts: list[Attempt]) -> None:
        legacy = [a for a in job_attempts if not a.session]
        self.legacy_keys = [f"legacy:{a.number}" for a in legacy]
        self.legacy_starts = np.array([a.sidecar_started_mono_ns for a in legacy], dtype=np.int64)
        key_of = {a.number: (a.session or f"legacy:{a.number}") for a in job_attempts}
        grouped: dict[str, list[Phase]] = {}
        for ph in job_phases:
            grouped.setdefault(key_of.get(ph.attempt, f"legacy:{ph.attempt}"), []).append(ph)
        self.targets: dict[str, list[_Target]] = {k: _targets(v) for k, v in grouped.items()}
        self.spans = {}
        for key, ts in self.targets.items():
            flat = [(i, lo, hi) for i, t in enumerate(ts) for lo, hi in t.spans]
            self.spans[key] = (np.array([f[1] for f in flat]), np.array([f[2] for f in flat]),
                               np.array([f[0] for f in flat], dtype=np.int64))


def _integrate(trace_path: Path, sessions: _Sessions, intensity_at: IntensityAt | None,
               quantities: tuple[str, ...]) -> tuple[dict[tuple[str, str, str, str], _Channel], dict[str, float]]:
    """Stream the trace into one running integral per (session, sensor, channel, quantity); the last stamp of
    each session (s). A counter's break stamps reach its reading even when a chunk ends between them."""
    channels: dict[tuple[str, str, str, str], _Channel] = {}
    pending: dict[tuple[str, str, str], set[int]] = {}  # break stamps not yet matched to their reading
    last_t: dict[str, float] = {}
    unknown_sessions: set[str] = set()
    for chunk in iter_trace(trace_path):
        chunk["key"] = _session_keys(chunk, sessions.legacy_starts, sessions.legacy_keys)
        data = chunk[chunk["quantity"] != SESSION_QUANTITY]
        if not len(data):
            continue
        for key, t_max in data.groupby("key", sort=False)["t_mono_ns"].max().items():
            last_t[key] = max(last_t.get(key, -math.inf), t_max / 1e9)
        breaks = data[data["quantity"] == BREAK_QUANTITY]
        for (key, sensor, channel), g in breaks.groupby(["key", "sensor", "channel"], sort=False):
            pending.setdefault((key, sensor, channel), set()).update(g["t_mono_ns"].tolist())
        series = data[data["quantity"].isin(quantities) & data["value"].notna()]
        for (key, sensor, channel, quantity), g in series.groupby(["key", "sensor", "channel", "quantity"],
                                                                   sort=False):
            if key not in sessions.targets:
                unknown_sessions.add(key)
                continue
            ch = channels.get((key, sensor, channel, quantity))
            if ch is None:
                a, b, owner = sessions.spans[key]
                ch = channels[(key, sensor, channel, quantity)] = _Channel(
                    quantity, str(g["component"].iat[0]), bool(g["estimated"].any()), a, b, owner,
                    len(sessions.targets[key]), intensity_at is not None)
            t_ns = g["t_mono_ns"].to_numpy()
            stamps = pending.get((key, sensor, channel))
            broken = np.isin(t_ns, list(stamps)) if stamps else np.zeros(len(t_ns), dtype=bool)
            if stamps:
                stamps.difference_update(t_ns[broken].tolist())
            ch.feed(t_ns / 1e9, g["value"].to_numpy(dtype=np.float64), g["t_wall_ns"].to_numpy(dtype=np.float64),
                    broken, intensity_at)
    if unknown_sessions:
        log.warning("%s: %d session(s) of the trace have no begin marker: not counted", trace_path,
                    len(unknown_sessions))
    return channels, last_t


_FLOATS = ("seconds", "energy_j", "coverage", "idle_w", "idle_j", "dynamic_j", "intensity_g_per_kwh")


def typed_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as numbers whatever the concatenation of partly empty frames made of them."""
    for c in _FLOATS:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    frame["index"] = frame["index"].astype("Int64")
    return frame


def _row(target: _Target, ch: _Channel, i: int, session_end: float | None, sensor: str, channel: str) -> dict:
    ph = target.phase
    end = session_end if session_end is not None else ch.last_t  # an open phase ends at its session's last sample
    spans = [(lo, end if hi == math.inf else hi) for lo, hi in target.spans]
    seconds = sum(max(hi - lo, 0.0) for lo, hi in spans)
    a = ph.start_mono_ns / 1e9
    b = end if ph.stop_mono_ns is None else ph.stop_mono_ns / 1e9
    sampled = b > ch.first_t and a < ch.last_t
    energy = float(ch.energy[i]) if sampled else math.nan  # the channel has no sample in it: unknown, never 0
    notes = []
    if ch.breaks:
        notes.append(f"{ch.breaks} counter break(s) in the session not counted")
    if ch.jumps:
        notes.append(f"{ch.jumps} backward step(s) of the monotonic clock not counted")
    stop_wall = ph.stop_wall_ns if ph.stop_wall_ns is not None else ph.start_wall_ns + int((b - a) * 1e9)
    return {
        "phase": target.name, "index": ph.index, "detail": "" if target.name == REST_OF_JOB else ph.detail,
        "attempt": ph.attempt, "complete": ph.complete,
        "t_start_wall_ns": ph.start_wall_ns, "t_end_wall_ns": stop_wall, "seconds": seconds,
        "sensor": sensor, "channel": channel, "component": ch.component,
        "method": "counter" if ch.counter else ("trapezoid" if ch.quantity == "power" else f"trapezoid {ch.quantity}"),
        "energy_j": energy, "samples": int(ch.samples[i]),
        "coverage": float(min(ch.covered[i] / seconds, 1.0)) if seconds > 0 else 0.0,
        "resolved": ch.period is not None and seconds >= 3 * ch.period, "estimated": ch.estimated,
        "intensity_g_per_kwh": float(ch.weighted[i] / ch.energy[i]) if ch.weigh and ch.energy[i] > 0 else math.nan,
        "notes": "; ".join(notes),
    }


def _with_idle(frame: pd.DataFrame) -> pd.DataFrame:
    """Idle power of each channel in each attempt (from that attempt's idle baseline: another node idles at
    another power) and every row's idle (idle W × seconds) and dynamic energy."""
    frame = frame.assign(idle_w=np.nan, idle_j=np.nan, dynamic_j=np.nan)
    base = frame[frame["phase"] == BASELINE]
    for row in base.itertuples():
        if not row.seconds > 0 or math.isnan(row.energy_j):
            continue
        watts = row.energy_j / row.seconds
        mask = (frame["sensor"] == row.sensor) & (frame["channel"] == row.channel) & (frame["attempt"] == row.attempt)
        frame.loc[mask, "idle_w"] = watts
        frame.loc[mask, "idle_j"] = watts * frame.loc[mask, "seconds"]
        frame.loc[mask, "dynamic_j"] = frame.loc[mask, "energy_j"] - frame.loc[mask, "idle_j"]
    return frame


@dataclass(frozen=True)
class Closure:
    """A span's total and how it was made: ``total_from`` is ``node``, ``node+gpu`` (the node meter leaves
    the GPUs out), ``components`` (GPU + CPU + DRAM: no node meter, or one that reads below even CPU +
    DRAM) or ``none``. ``rest_of_node_j`` is what the node meter saw beyond the components it covers."""

    total_j: float
    total_from: str
    rest_of_node_j: float
    note: str


def closure(node_j: float, gpu_j: float, cpu_j: float, dram_j: float,
            tolerance: float = CLOSURE_TOLERANCE) -> Closure:
    """Energy closure of one span: the node meter against GPU + CPU + DRAM (NaN: not measured)."""
    parts = [x for x in (gpu_j, cpu_j, dram_j) if not math.isnan(x)]
    host = [x for x in (cpu_j, dram_j) if not math.isnan(x)]
    if math.isnan(node_j):
        return Closure(sum(parts) if parts else math.nan, "components" if parts else "none", math.nan, "")
    if not parts:
        return Closure(node_j, "node", math.nan, "")
    if node_j >= sum(parts) * (1 - tolerance):
        return Closure(node_j, "node", node_j - sum(parts), "")
    if not math.isnan(gpu_j) and node_j >= sum(host) * (1 - tolerance):
        return Closure(node_j + gpu_j, "node+gpu", node_j - sum(host),
                       f"node meter {node_j:.0f} J < GPU + CPU + DRAM {sum(parts):.0f} J: it leaves the GPUs out; "
                       "total = node + GPU")
    return Closure(sum(parts), "components", math.nan,
                   f"node meter {node_j:.0f} J < components {sum(parts):.0f} J beyond the {tolerance:.0%} tolerance:"
                   " not used")


def _component_sums(rows: pd.DataFrame) -> dict[str, float]:
    return {c: float(rows.loc[rows["component"] == c, "energy_j"].sum(min_count=1)) for c in ("node", *COMPONENTS)}


def closure_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One ``rest_of_node`` row per phase span that has a node meter and a component."""
    rows = []
    measured = frame[frame["component"].isin(("node", *COMPONENTS))]
    for _, g in measured.groupby(["phase", *SPAN], dropna=False, sort=False):
        sums = _component_sums(g)
        if math.isnan(sums["node"]) or all(math.isnan(sums[c]) for c in COMPONENTS):
            continue
        c = closure(sums["node"], sums["gpu"], sums["cpu"], sums["dram"])
        first = g.iloc[0]
        rows.append(first.to_dict() | {
            "sensor": "closure", "channel": "rest_of_node", "component": "rest_of_node",
            "method": f"node - ({'+'.join(x for x in COMPONENTS if not math.isnan(sums[x]))}); total from "
                      f"{c.total_from}",
            "energy_j": c.rest_of_node_j, "coverage": float(g["coverage"].min()),
            "estimated": bool(g["estimated"].any()), "idle_w": math.nan, "idle_j": math.nan, "dynamic_j": math.nan,
            "intensity_g_per_kwh": math.nan, "notes": c.note})
    return pd.DataFrame(rows, columns=ENERGY_COLUMNS)


def join(trace_path: Path, markers_path: Path, out_path: Path | None = None,
         intensity: Intensity | None = None, node: str = FIRST_NODE, nodes: int = 1,
         crosscheck: bool = True) -> pd.DataFrame:
    """Read one node's trace and markers, join them, and write ``energy.csv`` if ``out_path`` is given.

    Every row is ``node``'s, of a job on ``nodes`` nodes (:func:`svbench.energy.node_join.join_nodes` joins
    each node and adds their sums); ``crosscheck`` adds sacct's figure for the job (once per job, not per node).

    With an ``intensity`` (:class:`svbench.energy.carbon.Intensity`), every row's ``intensity_g_per_kwh`` is
    the intensity weighted by the energy of the row's sample intervals (each at the intensity in force then).

    A missing or empty trace or markers file, or markers without a ``begin``, is an error naming the file:
    an empty ``energy.csv`` would read as a job that cost nothing.
    """
    for path, what in ((trace_path, "trace"), (markers_path, "markers")):
        if not Path(path).is_file():
            raise UserError(f"{path}: no {what} file (was the step run under svbench monitor?)")
        if Path(path).stat().st_size == 0:
            raise UserError(f"{path}: the {what} file is empty")
    records = read_markers(markers_path)
    job_attempts = attempts(records)
    if not job_attempts:
        raise UserError(f"{markers_path}: no 'begin' marker: not the markers of a monitored job")
    check_attempts(records, markers_path)
    job_phases = phases(records)
    frame = join_trace(Path(trace_path), job_phases, job_attempts, None if intensity is None else intensity.at)
    if not len(frame):  # a header, session or counter-break rows only: a table of nothing reads as 0 J
        raise UserError(f"{trace_path}: no sensor reading in the trace (no sensor was available, or the sidecar "
                        "stopped before its first reading): nothing to join")
    if intensity is not None and intensity.edge_used:
        frame["notes"] = [f"{n}; " if n else "" for n in frame["notes"]]
        frame["notes"] += f"intensity: {intensity.label}"
    frame = frame.assign(node=node, nodes=nodes, partial=False)
    if crosscheck:
        frame = pd.concat([frame, slurm_crosscheck(records, job_phases).assign(nodes=nodes)], ignore_index=True)
    frame = typed_columns(frame)
    if out_path is not None:
        write_energy(frame, Path(out_path))
    return frame


def write_energy(frame: pd.DataFrame, out_path: Path) -> None:
    """``energy.csv``, atomically; a folder that cannot be written is the user's to fix."""
    try:
        with atomic_write(out_path) as f:
            frame.to_csv(f, index=False)
    except OSError as exc:  # read-only, a file in the way, no space
        raise UserError(f"{out_path}: cannot write the energy table ({exc.strerror})") from None


def slurm_crosscheck(records: list[Marker], job_phases: list[Phase]) -> pd.DataFrame:
    """One row per SLURM attempt with sacct's ConsumedEnergy (the job's, over all its nodes), component
    ``slurm_crosscheck``, node ``all``.

    Never added to a total (the summary sums gpu/cpu/dram or node only); empty when the site's
    accounting has no energy for the job, which is the common case.
    """
    jobs = [rec for rec in records if rec.event == "begin"]
    attempt_phases = [ph for ph in job_phases if ph.name == "job"]
    rows = []
    for begin, ph in zip(jobs, attempt_phases, strict=False):
        job_id = begin.slurm_job_id
        if not job_id:
            continue
        joules = consumed_energy_j(job_id, begin.t_wall_ns)
        seconds = ((ph.stop_mono_ns or ph.start_mono_ns) - ph.start_mono_ns) / 1e9
        rows.append({"phase": "job", "index": pd.NA, "detail": "", "attempt": ph.attempt, "complete": ph.complete,
                     "t_start_wall_ns": ph.start_wall_ns, "t_end_wall_ns": ph.stop_wall_ns or ph.start_wall_ns,
                     "seconds": seconds, "sensor": "slurm", "channel": f"sacct:{job_id}",
                     "component": "slurm_crosscheck", "method": "sacct ConsumedEnergyRaw",
                     "energy_j": np.nan if joules is None else joules, "coverage": np.nan, "resolved": True,
                     "estimated": False, "notes": "", "node": JOB_NODE, "partial": False})
    return pd.DataFrame(rows, columns=ENERGY_COLUMNS)


# what the study needs of every energy.csv; an older svbench's table lacks only the node columns
REQUIRED_COLUMNS = ("phase", "index", "detail", "attempt", "t_start_wall_ns", "t_end_wall_ns", "seconds", "sensor",
                    "channel", "component", "method", "energy_j", "coverage", "resolved", "estimated", "notes")


def _cut_short(path: Path) -> bool:
    """Whether a non-empty file's last byte is not a newline."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:
        return False  # read_table names a file it cannot read


def read_energy(path: Path) -> pd.DataFrame:
    """An ``energy.csv`` as the join wrote it (text columns stay text: an empty detail is "", not NaN); one of
    an svbench that wrote no ``node`` column is a one-node job's."""
    text = ("detail", "notes", "method", "channel", "sensor", "component", "phase", "node")
    if _cut_short(Path(path)):  # the join writes whole lines, atomically: a last line without its end was cut
        raise UserError(f"{path}: the energy table is truncated (its last line has no end); join the job again")
    frame = read_table(path, "energy table", REQUIRED_COLUMNS, dtype={c: str for c in text}, keep_default_na=False,
                       na_values={c: [""] for c in ENERGY_COLUMNS if c not in text})
    for column in ("energy_j", "coverage", "seconds"):
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise UserError(f"{path}: the energy table's column {column!r} holds values that are not numbers")
    frame["index"] = frame["index"].astype("Int64")
    if "node" not in frame:
        frame = frame.assign(node=np.where(frame["component"] == "slurm_crosscheck", JOB_NODE, FIRST_NODE),
                             nodes=1, partial=False)
    frame["partial"] = frame["partial"].astype(str).str.lower() == "true"
    return frame


def node_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows measured on a node: not the job's sums over nodes (node ``all``)."""
    return frame[frame["node"] != JOB_NODE] if "node" in frame else frame


def span_total(g: pd.DataFrame) -> tuple[Closure, pd.DataFrame]:
    """The closure of one span's rows (one phase, attempt and index) and the rows its total is made of."""
    sums = _component_sums(g)
    c = closure(sums["node"], sums["gpu"], sums["cpu"], sums["dram"])
    used = {"node": ("node",), "node+gpu": ("node", "gpu"), "components": COMPONENTS, "none": ()}[c.total_from]
    return c, g[g["component"].isin(used)]


def total(rows: pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    """:func:`total_rows` and :func:`total_sources` in one pass over the spans."""
    spans = [span_total(g) for g in _spans(rows)]
    used = pd.concat([u for _, u in spans]) if spans else rows.iloc[0:0]
    sources = "/".join(dict.fromkeys(c.total_from for c, _ in spans)) or "none"
    return used, sources, "; ".join(dict.fromkeys(c.note for c, _ in spans if c.note))


def total_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``energy.csv`` that make up a total, span by span (attempt × index): the node meter when
    it covers the components (:func:`closure`), node + GPU when it leaves the GPUs out, else GPU + CPU
    package + DRAM. RAPL ``psys``/nested domains (component ``other``), ``rest_of_node`` and the SLURM
    cross-check never count, so nothing is added twice."""
    return total(rows)[0]


def _spans(rows: pd.DataFrame) -> list[pd.DataFrame]:
    """The measured rows of each span (the SPAN columns a frame has; all of them in an energy.csv)."""
    measured = rows[rows["component"].isin(("node", *COMPONENTS))]
    keys = [c for c in SPAN if c in rows.columns]
    if not keys or not len(measured):
        return [measured] if len(measured) else []
    return [g for _, g in measured.groupby(keys, dropna=False, sort=True)]


def total_sources(rows: pd.DataFrame) -> tuple[str, str]:
    """How the spans of ``rows`` were totalled (``node``, ``node+gpu``, ``components``, joined by ``/`` when
    spans differ) and the closure notes, for the summary and the report."""
    return total(rows)[1:]


def energy_basis(rows: pd.DataFrame) -> str:
    """``measured``, ``estimated``, ``measured+estimated``, or ``not measured`` for no rows."""
    if not len(rows):
        return "not measured"
    estimated = rows["estimated"].astype(bool)
    return "estimated" if estimated.all() else ("measured" if not estimated.any() else "measured+estimated")
