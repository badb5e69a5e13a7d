"""Join a sensor trace to the job's phase markers: energy per phase and channel.

Counters (NVML total energy, RAPL, the estimate's CPU counter) give energy as the difference of the
counter interpolated at the phase's edges. Power-only channels (IPMI, DRAM estimate) are integrated
with the trapezoid rule, the phase's edges interpolated. Every row says which method it used, how much
of the phase had samples (``coverage``), whether the phase was long enough for the sensor to resolve
it (three sample periods) and whether it is estimated.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.energy.markers import Phase, phases, read_markers
from svbench.energy.slurm import consumed_energy_j
from svbench.energy.trace import read_trace

GAP_PERIODS = 3.0  # a hole longer than this many median periods counts as "no samples"
ENERGY_COLUMNS = [
    "phase", "index", "attempt", "complete", "t_start_wall_ns", "t_end_wall_ns", "seconds", "sensor", "channel",
    "component", "method", "energy_j", "coverage", "resolved", "estimated", "baseline_w", "energy_above_idle_j",
]


def _coverage(t: np.ndarray, a: float, b: float) -> float:
    """Share of [a, b] that lies between samples no further apart than GAP_PERIODS periods."""
    if b <= a or len(t) < 2:
        return 0.0
    period = float(np.median(np.diff(t)))
    lo, hi = t[:-1], t[1:]
    ok = (hi - lo) <= GAP_PERIODS * period  # t is in seconds: no floor of a whole second here
    covered = np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0, None)[ok].sum()
    return float(min(covered / (b - a), 1.0))


def counter_energy(t: np.ndarray, e: np.ndarray, a: float, b: float) -> float:
    """Energy between a and b from a cumulative counter (edges clamped to the sampled span)."""
    return float(np.interp(b, t, e) - np.interp(a, t, e))


def trapezoid_energy(t: np.ndarray, p: np.ndarray, a: float, b: float) -> float:
    """Integral of power (W) over [a, b] in seconds-based units of t (edges interpolated, clamped)."""
    a, b = max(a, t[0]), min(b, t[-1])
    if b <= a:
        return 0.0
    inside = (t > a) & (t < b)
    tt = np.concatenate(([a], t[inside], [b]))
    pp = np.concatenate(([np.interp(a, t, p)], p[inside], [np.interp(b, t, p)]))
    return float(np.trapezoid(pp, tt))


def continuous_counter(e: np.ndarray) -> np.ndarray:
    """Join the counter runs of successive sidecar sessions (each starts again from zero) end to end.

    Within a session a counter never falls (wraps are already undone by the sensor), so a fall marks a
    new session; nothing is counted for the unmeasured time between two sessions.
    """
    drops = np.flatnonzero(np.diff(e) < 0) + 1
    if not len(drops):
        return e
    out = e.copy()
    for k in drops:
        out[k:] += out[k - 1] - out[k]
    return out


def join_frames(trace: pd.DataFrame, job_phases: list[Phase]) -> pd.DataFrame:
    """Energy per phase × channel. Times are monotonic ns in the inputs, seconds in the output."""
    rows: list[dict] = []
    series = trace[trace["quantity"].isin(["energy", "power"])].dropna(subset=["value"])
    t_all = np.sort(trace["t_mono_ns"].to_numpy(dtype=np.float64)) / 1e9

    def open_end(ph: Phase) -> float | None:
        """A phase whose stop never came ends at the last sample of its attempt (not in the next one)."""
        limit = np.inf if ph.open_until_mono_ns is None else ph.open_until_mono_ns / 1e9
        k = np.searchsorted(t_all, limit) - 1
        return float(t_all[k]) if k >= 0 else None

    channels = []
    for (sensor, channel, quantity), g in series.groupby(["sensor", "channel", "quantity"], sort=True):
        t = g["t_mono_ns"].to_numpy(dtype=np.float64) / 1e9
        v = g["value"].to_numpy(dtype=np.float64)
        if quantity == "energy":
            v = continuous_counter(v)
        channels.append((sensor, channel, quantity, t, v, str(g["component"].iloc[0]), bool(g["estimated"].any())))
    # a channel with a counter is integrated from it; its power readings (if any) would double count
    counters = {(s, c) for s, c, q, *_ in channels if q == "energy"}
    channels = [ch for ch in channels if ch[2] == "energy" or (ch[0], ch[1]) not in counters]
    for ph in job_phases:
        a = ph.start_mono_ns / 1e9
        b = ph.stop_mono_ns / 1e9 if ph.stop_mono_ns is not None else open_end(ph)
        if b is None or b <= a:
            continue
        for sensor, channel, quantity, t, v, component, estimated in channels:
            if len(t) < 2:
                continue
            period = float(np.median(np.diff(t)))
            if quantity == "energy":
                energy, method = counter_energy(t, v, a, b), "counter"
            else:
                energy, method = trapezoid_energy(t, v, a, b), "trapezoid"
            if b <= t[0] or a >= t[-1]:
                energy = math.nan  # the channel has no sample in this phase: unknown, never 0 J
            rows.append({
                "phase": ph.name, "index": ph.index, "attempt": ph.attempt, "complete": ph.complete,
                "t_start_wall_ns": ph.start_wall_ns,
                "t_end_wall_ns": ph.stop_wall_ns if ph.stop_wall_ns is not None
                else ph.start_wall_ns + int((b - a) * 1e9),
                "seconds": b - a, "sensor": sensor, "channel": channel, "component": component,
                "method": method, "energy_j": energy, "coverage": _coverage(t, a, b),
                "resolved": (b - a) >= 3 * period, "estimated": estimated,
            })
    frame = pd.DataFrame(rows, columns=[c for c in ENERGY_COLUMNS if c not in ("baseline_w", "energy_above_idle_j")])
    frame["index"] = frame["index"].astype("Int64")  # an epoch number, not a float; empty for unnumbered phases
    return _with_idle_baseline(frame)


def _with_idle_baseline(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the idle power of each channel (from an ``idle_baseline`` phase) and energy above it."""
    frame = frame.assign(baseline_w=np.nan, energy_above_idle_j=np.nan)
    base = frame[frame["phase"] == "idle_baseline"]
    for _, row in base.iterrows():
        watts = row["energy_j"] / row["seconds"]
        mask = (frame["sensor"] == row["sensor"]) & (frame["channel"] == row["channel"])
        frame.loc[mask, "baseline_w"] = watts
        frame.loc[mask, "energy_above_idle_j"] = frame.loc[mask, "energy_j"] - watts * frame.loc[mask, "seconds"]
    return frame


def join(trace_path: Path, markers_path: Path, out_path: Path | None = None) -> pd.DataFrame:
    """Read a trace and its markers, join them, and write ``energy.csv`` if ``out_path`` is given."""
    records = read_markers(markers_path)
    job_phases = phases(records)
    frame = join_frames(read_trace(trace_path), job_phases)
    frame = pd.concat([frame, slurm_crosscheck(records, job_phases)], ignore_index=True)
    if out_path is not None:
        out_path = Path(out_path)
        tmp = out_path.with_suffix(out_path.suffix + ".tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(out_path)
    return frame


def slurm_crosscheck(records: list[dict], job_phases: list[Phase]) -> pd.DataFrame:
    """One row per SLURM attempt with sacct's ConsumedEnergy, component ``slurm_crosscheck``.

    Never added to a total (the summary sums gpu/cpu/dram or node only); empty when the site's
    accounting has no energy for the job, which is the common case.
    """
    jobs = [rec for rec in records if rec.get("event") == "begin"]
    attempt_phases = [ph for ph in job_phases if ph.name == "job"]
    rows = []
    for begin, ph in zip(jobs, attempt_phases, strict=False):
        job_id = begin.get("slurm_job_id")
        if not job_id:
            continue
        joules = consumed_energy_j(job_id)
        seconds = ((ph.stop_mono_ns or ph.start_mono_ns) - ph.start_mono_ns) / 1e9
        rows.append({"phase": "job", "index": pd.NA, "attempt": ph.attempt, "complete": ph.complete,
                     "t_start_wall_ns": ph.start_wall_ns, "t_end_wall_ns": ph.stop_wall_ns or ph.start_wall_ns,
                     "seconds": seconds, "sensor": "slurm", "channel": f"sacct:{job_id}",
                     "component": "slurm_crosscheck", "method": "sacct ConsumedEnergyRaw",
                     "energy_j": np.nan if joules is None else joules, "coverage": np.nan, "resolved": True,
                     "estimated": False})
    return pd.DataFrame(rows, columns=ENERGY_COLUMNS)


def total_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``energy.csv`` that make up a total: the node meter when there is one (it covers the
    whole node), else GPU + CPU package + DRAM. RAPL ``psys``/nested domains (component ``other``) and
    the SLURM cross-check never count, so nothing is added twice."""
    node = rows[rows["component"] == "node"]
    return node if len(node) else rows[rows["component"].isin(["gpu", "cpu", "dram"])]


def energy_basis(rows: pd.DataFrame) -> str:
    """``measured``, ``estimated``, ``measured+estimated``, or ``not measured`` for no rows."""
    if not len(rows):
        return "not measured"
    estimated = rows["estimated"].astype(bool)
    return "estimated" if estimated.all() else ("measured" if not estimated.any() else "measured+estimated")
