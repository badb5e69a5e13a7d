"""The join: energy per phase and channel from replayed traces of a known power profile."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fakes.node import TIMEOUT
from fakes.replay import T0, S, exact, marker, replay, rows, write_markers

from svbench.energy.join import join
from svbench.instrument.sensors.base import Reading
from svbench.instrument.trace import TraceWriter


def test_join_replay_matches_the_exact_integral(tmp_path):
    times = np.round(np.arange(0, 20.0001, 0.1), 6)
    replay(tmp_path / "trace.csv", times)
    write_markers(tmp_path / "markers.jsonl", [
        marker("begin", 0.5), marker("start", 2.03, phase="a", index=None, pid=1),
        marker("stop", 7.77, phase="a", index=None, pid=1, ok=True),
        marker("start", 7.77, phase="b", index=0, pid=1), marker("stop", 15.41, phase="b", index=0, pid=1, ok=True),
        marker("start", 5.0, phase="short", index=None, pid=2), marker("stop", 5.2, phase="short", index=None, pid=2),
        marker("start", 16.0, phase="late", index=None, pid=2), marker("stop", 25.0, phase="late", index=None, pid=2),
        marker("end", 19.5, status=0),
    ])
    frame = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl", tmp_path / "energy.csv")
    assert (tmp_path / "energy.csv").exists() and not (tmp_path / "energy.csv.tmp").exists()
    for name, a, b in (("a", 2.03, 7.77), ("b", 7.77, 15.41), ("job", 0.5, 19.5)):
        for sensor, method in (("meter", "trapezoid"), ("counter", "counter")):
            row = rows(frame, name, sensor)
            assert row["method"] == method
            assert row["energy_j"] == pytest.approx(exact(a, b), rel=0.005), (name, sensor)
            assert row["coverage"] == pytest.approx(1.0)
            assert row["resolved"] and row["complete"] and not row["estimated"]
            assert row["seconds"] == pytest.approx(b - a)
            assert row["component"] == "node"
    assert not rows(frame, "short", "meter")["resolved"]  # 0.2 s < three 0.1-s periods
    late = rows(frame, "late", "meter")  # runs 5 s past the last sample
    assert late["coverage"] == pytest.approx(4 / 9, abs=0.02)
    assert late["energy_j"] == pytest.approx(exact(16, 20), rel=0.005)  # what was measured, nothing invented
    assert frame["idle_w"].isna().all() and frame["dynamic_j"].isna().all()


def test_join_gap_lowers_coverage(tmp_path):
    times = np.round(np.arange(0, 20.0001, 0.1), 6)
    times = times[(times < 10) | (times > 12)]  # the sensor said nothing for two seconds
    replay(tmp_path / "trace.csv", times)
    write_markers(tmp_path / "markers.jsonl", [
        marker("begin", 0.0), marker("start", 7.77, phase="b", index=0, pid=1),
        marker("stop", 15.41, phase="b", index=0, pid=1),
        marker("start", 2.0, phase="a", index=0, pid=1), marker("stop", 6.0, phase="a", index=0, pid=1)])
    frame = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    for sensor in ("meter", "counter"):
        b = rows(frame, "b", sensor)
        assert b["coverage"] == pytest.approx(1 - 2.2 / (15.41 - 7.77), abs=0.01)
        assert rows(frame, "a", sensor)["coverage"] == pytest.approx(1.0)
    # the counter still knows the energy across the hole; the meter bridges it with a straight line
    assert rows(frame, "b", "counter")["energy_j"] == pytest.approx(exact(7.77, 15.41), rel=0.005)


def test_join_counter_takes_precedence_and_idle_baseline(tmp_path):
    times = np.round(np.arange(0, 10.0001, 0.1), 6)
    w = TraceWriter(tmp_path / "trace.csv")
    for t in times:
        watts = 50.0 if t < 3.5 else 150.0
        energy = 50.0 * min(t, 3.5) + 150.0 * max(t - 3.5, 0)
        ns = T0 + round(t * S)
        w.write("nvml", [Reading("gpu0", "energy", energy, "J", "gpu"), Reading("gpu0", "power", watts * 2, "W", "gpu"),
                         Reading("gpu0", "utilisation", 40.0, "%", "gpu")], ns, ns)
        w.write("ipmi", [Reading("node", "power", watts, "W", "node")], ns, ns)
    w.close()
    write_markers(tmp_path / "markers.jsonl", [
        marker("begin", 0.5), marker("start", 1, phase="idle_baseline", index=None, pid=1),
        marker("stop", 3, phase="idle_baseline", index=None, pid=1, ok=True),
        marker("start", 4, phase="work", index=None, pid=2), marker("stop", 9, phase="work", index=None, pid=2),
        marker("end", 9.5, status=0)])
    frame = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    gpu = frame[frame["sensor"] == "nvml"]
    assert set(gpu["method"]) == {"counter"}  # the power channel of gpu0 is not added on top
    assert len(gpu) == 4  # one row per phase: idle_baseline, work, job, rest_of_job
    for sensor in ("nvml", "ipmi"):
        work = rows(frame, "work", sensor)
        assert work["energy_j"] == pytest.approx(750.0, rel=1e-6)
        assert work["idle_w"] == pytest.approx(50.0)
        assert work["idle_j"] == pytest.approx(50.0 * 5)
        assert work["dynamic_j"] == pytest.approx(750.0 - 50.0 * 5, rel=1e-6)
        assert rows(frame, "idle_baseline", sensor)["dynamic_j"] == pytest.approx(0.0, abs=1e-6)
        # the job is the workload alone: it starts where the baseline stopped (3 s), not at begin (0.5 s)
        job = rows(frame, "job", sensor)
        assert job["seconds"] == pytest.approx(6.5)
        assert job["energy_j"] == pytest.approx(50.0 * 0.5 + 150.0 * 6.0, rel=0.01)  # ipmi: a trapezoid at the step


def test_join_killed_job_is_closed_at_the_last_sample(tmp_path):
    times = np.round(np.arange(0, 20.0001, 0.1), 6)
    replay(tmp_path / "trace.csv", times)
    write_markers(tmp_path / "markers.jsonl", [marker("begin", 1.0), marker("start", 2.0, phase="epoch", index=0)])
    frame = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    for name, a in (("job", 1.0), ("epoch", 2.0)):
        row = rows(frame, name, "counter")
        assert not row["complete"]
        assert row["seconds"] == pytest.approx(20.0 - a)
        assert row["energy_j"] == pytest.approx(exact(a, 20.0), rel=0.005)
        assert row["t_end_wall_ns"] - row["t_start_wall_ns"] == pytest.approx((20.0 - a) * S, rel=1e-6)


def test_join_two_sessions_counters_restart_from_zero(tmp_path):
    """A preempted attempt and its resumption: the second sidecar's counters start again at zero."""
    w = TraceWriter(tmp_path / "trace.csv")
    for t in np.arange(0, 10.01, 0.5):
        ns = T0 + round(t * S)
        w.write("rapl", [Reading("package-0", "energy", 10.0 * t, "J", "cpu")], ns, ns)
    for t in np.arange(20, 30.01, 0.5):
        ns = T0 + round(t * S)
        w.write("rapl", [Reading("package-0", "energy", 10.0 * (t - 20), "J", "cpu")], ns, ns)
    w.close()
    write_markers(tmp_path / "markers.jsonl", [
        marker("begin", 1), marker("start", 2, phase="epoch", index=0, pid=1),  # killed at ~10 s
        marker("begin", 21, sidecar_started_mono_ns=T0 + 19_900_000_000),
        marker("start", 22, phase="epoch", index=0, pid=2),
        marker("stop", 28, phase="epoch", index=0, pid=2), marker("end", 29, status=0)])
    frame = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    got = {(r.phase, r.attempt): r for r in frame.itertuples()}
    assert got["job", 1].seconds == pytest.approx(9.0) and got["job", 1].energy_j == pytest.approx(90.0)
    assert got["epoch", 1].energy_j == pytest.approx(80.0) and not got["epoch", 1].complete
    assert got["job", 2].energy_j == pytest.approx(80.0) and got["job", 2].complete
    assert got["epoch", 2].energy_j == pytest.approx(60.0)
    assert (frame["energy_j"] >= 0).all()


def test_a_phase_without_samples_of_a_channel_is_empty_not_zero(tmp_path) -> None:
    w = TraceWriter(tmp_path / "trace.csv")
    for t in np.arange(0, 10, 0.1):
        ns = T0 + round(t * S)
        w.write("ipmi", [Reading("node", "power", 100.0, "W", "node")], ns, ns)
    w.close()
    write_markers(tmp_path / "markers.jsonl", [
        marker("begin", 0), marker("start", 20, phase="epoch", index=0, pid=1),
        marker("stop", 30, phase="epoch", index=0, pid=1), marker("start", 2, phase="epoch", index=1, pid=1),
        marker("stop", 4, phase="epoch", index=1, pid=1)])
    frame = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    frame = frame[frame["phase"] == "epoch"].set_index("index")
    assert np.isnan(frame.loc[0, "energy_j"]) and frame.loc[0, "coverage"] == 0
    assert frame.loc[1, "energy_j"] == pytest.approx(200.0)


def _session_trace(path: Path, sessions: list[tuple[str, float, np.ndarray, Callable[[float], list[Reading]]]]):
    """Write a trace of several sidecar sessions: (id, clock offset s, times, readings at t) each."""
    from svbench.instrument.trace import SESSION_QUANTITY, SESSION_SENSOR

    w = TraceWriter(path)
    for sid, offset, times, readings in sessions:
        ns = T0 + round((offset + times[0]) * S)
        w.write(SESSION_SENSOR, [Reading(sid, SESSION_QUANTITY, 0.0, "", "other")], ns, ns)
        for t in times:
            ns = T0 + round((offset + t) * S)
            w.write("s", readings(t), ns, ns)
    w.close()


def test_overlapping_clocks_of_two_sessions_join_apart(tmp_path):
    """Attempt 2's clock range overlaps attempt 1's (two nodes booted alike): each joins only its own samples."""
    times = np.round(np.arange(0, 10.0001, 0.1), 6)
    _session_trace(tmp_path / "trace.csv", [
        ("aaa", 0.0, times, lambda t: [Reading("node", "power", 100.0, "W", "node"),
                                       Reading("package-0", "energy", 10.0 * t, "J", "cpu")]),
        ("bbb", 2.0, times, lambda t: [Reading("node", "power", 300.0, "W", "node"),
                                       Reading("package-0", "energy", 30.0 * t, "J", "cpu")])])
    write_markers(tmp_path / "markers.jsonl", [
        marker("begin", 1, session="aaa"), marker("start", 2, phase="epoch", index=0, pid=1),
        marker("begin", 3, session="bbb"), marker("start", 4, phase="epoch", index=0, pid=2),
        marker("stop", 10, phase="epoch", index=0, pid=2), marker("end", 11, status=0)])
    frame = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    got = {(r.phase, r.attempt, r.sensor, r.component): r for r in frame.itertuples()}
    # attempt 1: from its begin (1 s) to its last sample (10 s), at 100 W / 10 W
    assert got["job", 1, "s", "node"].seconds == pytest.approx(9.0)
    assert got["job", 1, "s", "node"].energy_j == pytest.approx(900.0)
    assert got["job", 1, "s", "cpu"].energy_j == pytest.approx(90.0)
    assert got["epoch", 1, "s", "node"].energy_j == pytest.approx(800.0)
    # attempt 2: 3 s .. 11 s of its own clock, at 300 W / 30 W
    assert got["job", 2, "s", "node"].energy_j == pytest.approx(2400.0)
    assert got["job", 2, "s", "cpu"].energy_j == pytest.approx(240.0)
    assert got["epoch", 2, "s", "cpu"].energy_j == pytest.approx(180.0)


def test_counter_break_and_clock_step_back_are_not_counted(tmp_path):
    from svbench.energy.join import BREAK_QUANTITY

    w = TraceWriter(tmp_path / "trace.csv")
    for k, t in enumerate(np.round(np.arange(0, 10.0001, 0.5), 6)):
        ns = T0 + round(t * S)
        if k == 10:  # at 5 s the counter reset: the sensor credits nothing for 4.5..5 s and says so
            w.write("rapl", [Reading("package-0", BREAK_QUANTITY, -45.0, "J", "cpu")], ns, ns)
        energy = 10.0 * t if t < 5 else 45.0 + 10.0 * (t - 5)
        w.write("rapl", [Reading("package-0", "energy", energy, "J", "cpu")], ns, ns)
        clock = ns if t < 8 else ns - 20 * S  # at 8 s this channel's clock steps back 20 s
        w.write("ipmi", [Reading("node", "power", 100.0, "W", "node")], ns, clock)
    w.close()
    write_markers(tmp_path / "markers.jsonl", [marker("begin", 0), marker("end", 7.9, status=0)])
    frame = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    rapl = frame[(frame["phase"] == "job") & (frame["sensor"] == "rapl")].iloc[0]
    assert rapl["energy_j"] == pytest.approx(10.0 * 7.4)  # 7.9 s less the 0.5 s that was not counted
    assert rapl["coverage"] == pytest.approx(7.4 / 7.9)
    assert "counter break" in rapl["notes"]
    ipmi = frame[(frame["phase"] == "job") & (frame["sensor"] == "ipmi")].iloc[0]
    # the samples after the step lie 20 s back, outside the job: it has 0..7.5 s of them, not the step
    assert ipmi["energy_j"] == pytest.approx(750.0) and "monotonic clock" in ipmi["notes"]
    assert ipmi["samples"] == 16  # 0, 0.5 … 7.5 s; the readings after the step lie outside the job


def test_an_old_trace_whose_counters_restart_is_not_counted_across_the_restart(tmp_path):
    """A trace without session rows (older svbench): a counter that falls is a restart, counted as unknown."""
    w = TraceWriter(tmp_path / "trace.csv")
    for t in np.arange(0, 10.01, 0.5):
        ns = T0 + round(t * S)
        w.write("rapl", [Reading("package-0", "energy", 10.0 * t if t < 5 else 10.0 * (t - 5), "J", "cpu")], ns, ns)
    w.close()
    write_markers(tmp_path / "markers.jsonl", [marker("begin", 0), marker("end", 10, status=0)])
    job = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl").query("phase == 'job'").iloc[0]
    assert job["energy_j"] == pytest.approx(95.0) and job["coverage"] == pytest.approx(0.95)


def test_a_node_meter_that_misses_the_gpus_is_reported_and_not_the_total(tmp_path):
    from svbench.energy.join import total_rows, total_sources

    times = np.round(np.arange(0, 10.0001, 0.1), 6)
    _session_trace(tmp_path / "trace.csv", [("aaa", 0.0, times, lambda t: [
        Reading("gpu0", "energy", 300.0 * t, "J", "gpu"), Reading("package-0", "energy", 50.0 * t, "J", "cpu"),
        Reading("node", "power", 120.0, "W", "node")])])  # the BMC reads 120 W: CPU + rest, no GPU
    write_markers(tmp_path / "markers.jsonl", [marker("begin", 0, session="aaa"), marker("end", 10, status=0)])
    frame = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    rest = frame[frame["component"] == "rest_of_node"].iloc[0]
    assert rest["energy_j"] == pytest.approx(700.0) and "leaves the GPUs out" in rest["notes"]
    job = frame[frame["phase"] == "job"]
    assert total_rows(job)["energy_j"].sum() == pytest.approx(1200.0 + 3000.0)  # node + GPU
    assert total_sources(job)[0] == "node+gpu"


def test_rest_of_node_when_the_meter_covers_everything(tmp_path):
    from svbench.energy.join import total_rows, total_sources

    times = np.round(np.arange(0, 10.0001, 0.1), 6)
    _session_trace(tmp_path / "trace.csv", [("aaa", 0.0, times, lambda t: [
        Reading("gpu0", "energy", 300.0 * t, "J", "gpu"), Reading("node", "power", 400.0, "W", "node")])])
    write_markers(tmp_path / "markers.jsonl", [marker("begin", 0, session="aaa"), marker("end", 10, status=0)])
    frame = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    rest = frame[frame["component"] == "rest_of_node"].iloc[0]
    assert rest["energy_j"] == pytest.approx(1000.0) and rest["notes"] == ""
    job = frame[frame["phase"] == "job"]
    assert total_rows(job)["energy_j"].sum() == pytest.approx(4000.0) and total_sources(job)[0] == "node"


@pytest.mark.parametrize("case", ["no trace", "empty trace", "no markers", "empty markers", "no begin"])
def test_energy_join_refuses_missing_inputs_naming_the_file(tmp_path, case):
    folder = tmp_path / "job folder"  # a space in the name
    folder.mkdir()
    trace, markers = folder / "trace.csv", folder / "markers.jsonl"
    replay(trace, np.arange(0, 2, 0.1))
    write_markers(markers, [marker("begin", 0), marker("end", 1, status=0)])
    start_only = json.dumps(marker("start", 0, phase="x", index=None, pid=1).to_json()) + "\n"
    broken = {"no trace": (trace, None), "empty trace": (trace, ""), "no markers": (markers, None),
              "empty markers": (markers, ""), "no begin": (markers, start_only)}[case]
    path, text = broken
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    out = tmp_path / "energy.csv"
    proc = subprocess.run([sys.executable, "-m", "svbench.cli", "energy", "join", "--dir", str(folder),
                           "--out", str(out)], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 2 and str(path) in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()
