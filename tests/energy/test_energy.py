"""The energy core: markers, the trace, the join, and the monitor + sidecar as real processes.

Fakes sit only at the OS boundary: a powercap tree in tmp_path (SVBENCH_POWERCAP_ROOT), the fake
ipmitool (SVBENCH_IPMITOOL) and the fake pynvml first on PYTHONPATH of the sidecar process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest
from fakes.node import CPU_W, DRAM_W, GPU_W, NODE_W, TIMEOUT, gone, kill_quietly, started, wait_for
from support import BENCH

from svbench.energy import markers as mk
from svbench.energy.join import join
from svbench.energy.markers import phase, phases, read_markers
from svbench.energy.sensors.base import Reading
from svbench.energy.trace import COLUMNS, TraceWriter, read_trace

S = 10**9  # ns per second
T0 = 1000 * S  # monotonic origin of the replayed traces


# --- markers ------------------------------------------------------------------------------------


def test_phase_is_a_no_op_without_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv(mk.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with phase("epoch", 1):
        pass
    assert list(tmp_path.iterdir()) == []


def test_phase_start_stop_pairing_and_exception(monkeypatch, tmp_path):
    path = tmp_path / "markers.jsonl"
    monkeypatch.setenv(mk.ENV, str(path))
    with phase("load"):
        pass
    for i in range(2):
        with phase("epoch", i, lr=0.1):
            pass
    with pytest.raises(RuntimeError), phase("validate"):
        raise RuntimeError("boom")
    records = read_markers(path)
    assert [(r["event"], r["phase"], r["index"]) for r in records] == [
        ("start", "load", None), ("stop", "load", None), ("start", "epoch", 0), ("stop", "epoch", 0),
        ("start", "epoch", 1), ("stop", "epoch", 1), ("start", "validate", None), ("stop", "validate", None)]
    assert records[2]["lr"] == 0.1 and records[2]["pid"] == os.getpid()
    assert all(r["t_mono_ns"] > 0 and r["t_wall_ns"] > 0 for r in records)
    got = {(p.name, p.index): p for p in phases(records)}
    assert len(got) == 4
    assert got["epoch", 1].complete and got["load", None].complete
    assert got["epoch", 1].stop_mono_ns >= got["epoch", 1].start_mono_ns
    assert not got["validate", None].complete  # ended by an exception: ok=false


def test_torn_markers(tmp_path):
    path = tmp_path / "markers.jsonl"
    mk.write_marker(path, "begin", attempt=1)
    mk.write_marker(path, "start", phase="epoch", index=0, pid=1)
    with open(path, "a") as f:
        f.write('{"event": "stop", "pha')  # killed mid-write
    assert [r["event"] for r in read_markers(path)] == ["begin", "start"]
    with open(path, "a") as f:
        f.write("\n" + json.dumps({"event": "end", "status": 0, "t_mono_ns": 1, "t_wall_ns": 1}) + "\n")
    with pytest.raises(ValueError, match=r"markers\.jsonl:3:"):
        read_markers(path)
    assert read_markers(tmp_path / "absent.jsonl") == []


def marker(event: str, t: float, **fields: object) -> dict:
    return {"event": event, "t_mono_ns": T0 + int(t * S), "t_wall_ns": 1_700_000_000 * S + int(t * S), **fields}


def test_phases_two_attempts_close_the_first_as_incomplete():
    records = [
        marker("begin", 1, attempt=1), marker("start", 2, phase="epoch", index=0, pid=7),
        marker("start", 3, phase="epoch", index=1, pid=7),  # killed here: no stop, no end
        marker("begin", 10, attempt=2), marker("start", 11, phase="epoch", index=1, pid=8),
        marker("stop", 12, phase="epoch", index=1, pid=8, ok=True), marker("end", 13, status=0),
    ]
    got = phases(records)
    first = [p for p in got if p.attempt == 1]
    second = [p for p in got if p.attempt == 2]
    assert sorted((p.name, p.index) for p in first) == [("epoch", 0), ("epoch", 1), ("job", None)]
    assert all(not p.complete and p.stop_mono_ns is None for p in first)
    assert sorted((p.name, p.index, p.complete) for p in second) == [("epoch", 1, True), ("job", None, True)]
    job2 = next(p for p in second if p.name == "job")
    assert job2.stop_mono_ns == T0 + 13 * S


def test_phases_open_at_end_are_closed_at_end_as_incomplete():
    records = [marker("begin", 1), marker("start", 2, phase="epoch", index=0, pid=7), marker("end", 5, status=137)]
    got = {p.name: p for p in phases(records)}
    assert not got["epoch"].complete and got["epoch"].stop_mono_ns == T0 + 5 * S
    assert not got["job"].complete and got["job"].stop_mono_ns == T0 + 5 * S


# --- trace --------------------------------------------------------------------------------------


def test_trace_round_trip(tmp_path):
    path = tmp_path / "trace.csv"
    w = TraceWriter(path)
    w.write("nvml", [Reading("gpu0", "energy", 1.5, "J", "gpu"), Reading("gpu0", "power", 301.25, "W", "gpu")],
            t_wall_ns=2 * S, t_mono_ns=T0 + 2 * S)
    w.write("estimate", [Reading("dram", "power", 0.75, "W", "dram", estimated=True)], 1 * S, T0 + 1 * S)
    w.write("ipmi", [Reading("*", "error", float("nan"), "", "other")], 3 * S, T0 + 3 * S)
    w.close()
    w.write("ipmi", [Reading("node", "power", 1.0, "W", "node")])  # after close: dropped, no crash
    frame = read_trace(path)
    assert list(frame.columns) == COLUMNS
    assert frame["sensor"].tolist() == ["estimate", "nvml", "nvml", "ipmi"]  # sorted by monotonic time
    assert frame["value"].iloc[:3].tolist() == [0.75, 1.5, 301.25] and np.isnan(frame["value"].iloc[3])
    assert frame["estimated"].tolist() == [True, False, False, False]
    assert frame["t_mono_ns"].dtype == np.int64 and frame["t_mono_ns"].iloc[0] == T0 + S
    # a second writer (a new attempt) appends without a second header
    TraceWriter(path).close()
    assert path.read_text().count("t_wall_ns") == 1


@pytest.mark.parametrize("tail", ["1700000000", "1,2,nvml,gpu0,energy,12.3", "1,2,nvml,gpu0,energy,12.5,J,gpu,"])
def test_trace_torn_last_line(tmp_path, tail):
    path = tmp_path / "trace.csv"
    w = TraceWriter(path)
    w.write("rapl", [Reading("package-0", "energy", 2.0, "J", "cpu")], S, T0)
    w.close()
    with open(path, "a") as f:
        f.write(tail)
    frame = read_trace(path)
    assert frame["value"].tolist() == [2.0]
    # a new session appending to the torn file: the torn row must not glue onto the next one
    w = TraceWriter(path)
    w.write("rapl", [Reading("package-0", "energy", 3.0, "J", "cpu")], 2 * S, T0 + S)
    w.close()
    assert read_trace(path)["value"].tolist() == [2.0, 3.0]


def test_trace_torn_middle_row_with_missing_fields_is_dropped(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text(",".join(COLUMNS) + "\n1,5,rapl,package-0,energy,1.0,J,cpu,0\n2,6,rapl,package-0,energy,12\n"
                    "3,7,rapl,package-0,energy,2.0,J,cpu,0\n")
    assert read_trace(path)["value"].tolist() == [1.0, 2.0]  # "12" may be a cut-off "12.9": not kept


def test_trace_empty_or_header_only(tmp_path):
    for text in ("", ",".join(COLUMNS) + "\n", ",".join(COLUMNS)):
        path = tmp_path / "trace.csv"
        path.write_text(text)
        frame = read_trace(path)
        assert frame.empty and list(frame.columns) == COLUMNS
    assert read_trace(tmp_path / "absent.csv").empty


# --- join: replay of a known power profile -------------------------------------------------------


def power(t: np.ndarray) -> np.ndarray:
    """Piecewise-linear ramp up, plateau and ramp down, plus a sinusoid: W at seconds t."""
    ramp = np.interp(t, [0, 8, 12, 20], [200, 280, 280, 120])
    return ramp + 40 * np.sin(2 * np.pi * t / 3)


FINE = np.linspace(0, 25, 2_500_001)
FINE_E = np.concatenate(([0.0], np.cumsum((power(FINE[1:]) + power(FINE[:-1])) / 2 * np.diff(FINE))))


def exact(a: float, b: float) -> float:
    return float(np.interp(b, FINE, FINE_E) - np.interp(a, FINE, FINE_E))


def replay(path: Path, times: np.ndarray, extra: Callable[[TraceWriter, float], None] | None = None) -> None:
    """A 'meter' with power only and a 'counter' with energy only, sampled at ``times`` (seconds)."""
    w = TraceWriter(path)
    for t in times:
        ns = T0 + round(t * S)
        w.write("meter", [Reading("node", "power", float(power(np.array(t))), "W", "node")], ns, ns)
        w.write("counter", [Reading("node", "energy", exact(0, t), "J", "node")], ns, ns)
        if extra:
            extra(w, t)
    w.close()


def write_markers(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def rows(frame, name: str, sensor: str | None = None):
    part = frame[frame["phase"] == name]
    return part if sensor is None else part[part["sensor"] == sensor].iloc[0]


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


# --- monitor + sidecar, end to end ---------------------------------------------------------------

def test_all_sensors_end_to_end(node, tmp_path):
    node.all_sensors()
    out = tmp_path / "run"
    status, output = node.run(out, baseline=0.3)
    assert status == 0, output
    trace = read_trace(out / "trace.csv")
    assert {"nvml", "rapl", "ipmi"} <= set(trace["sensor"]) and "estimate" not in set(trace["sensor"])
    assert "error" not in set(trace["quantity"]), trace[trace["quantity"] == "error"]
    pkg = trace[(trace["sensor"] == "rapl") & (trace["channel"] == "package-0")]["value"].to_numpy()
    assert (np.diff(pkg) >= 0).all() and pkg[-1] > 1.0  # unwrapped across max_energy_range_uj

    meta = json.loads((out / "sidecar.json").read_text())
    assert {s["name"]: s["available"] for s in meta["sensors"]} == {"nvml": True, "rapl": True, "ipmi": True}

    frame = join(out / "trace.csv", out / "markers.jsonl")
    assert {"job", "idle_baseline", "load", "work"} <= set(frame["phase"])
    job = frame[frame["phase"] == "job"].set_index("component")
    assert set(job.index) == {"gpu", "cpu", "dram", "node", "rest_of_node"}
    assert job.loc["gpu", "method"] == "counter" and job.loc["cpu", "method"] == "counter"
    assert job.loc["dram", "method"] == "counter" and job.loc["node", "method"] == "trapezoid"
    assert not job["estimated"].any() and job["complete"].all()
    assert (job["coverage"] > 0.5).all()  # generous: a loaded CI machine may stall the sampler
    for component, watts in (("gpu", GPU_W), ("cpu", CPU_W), ("dram", DRAM_W), ("node", NODE_W)):
        mean_w = job.loc[component, "energy_j"] / job.loc[component, "seconds"]
        assert mean_w == pytest.approx(watts, rel=0.25), component
    work = frame[frame["phase"] == "work"]
    assert (work["energy_j"] > 0).all() and work["complete"].all() and (work["index"] == 0).all()
    assert work[work["component"] != "rest_of_node"]["idle_w"].notna().all()


def test_estimate_only_without_sensors_and_node_metadata(node, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    out = tmp_path / "run"
    status, output = node.run(out, arg="3")
    assert status == 3, output
    meta = json.loads((out / "sidecar.json").read_text())
    sensors = {s["name"]: s for s in meta["sensors"]}
    for name in ("nvml", "rapl", "ipmi"):
        assert not sensors[name]["available"] and sensors[name]["reason"]
    assert "no GPU" in sensors["nvml"]["reason"] and "powercap" in sensors["rapl"]["reason"]
    assert "not found" in sensors["ipmi"]["reason"]
    assert sensors["estimate"]["available"]
    assert meta["node"]["host"] and meta["node"]["cpu_model"] is not None
    assert meta["node"]["environment"]["SLURM_JOB_ID"] == "4242"

    trace = read_trace(out / "trace.csv")
    assert set(trace["sensor"]) == {"estimate"} and trace["estimated"].all()
    frame = join(out / "trace.csv", out / "markers.jsonl")
    # job 4242 is not a real SLURM job: its sacct cross-check row is there, and empty (never 0)
    crosscheck = frame[frame["component"] == "slurm_crosscheck"]
    assert len(crosscheck) == 1 and crosscheck["energy_j"].isna().all()
    frame = frame[frame["component"] != "slurm_crosscheck"]
    assert frame["estimated"].all() and set(frame["component"]) == {"cpu", "dram"}
    job = frame[(frame["phase"] == "job")]
    assert not job["complete"].any()  # status 3
    cpu = job[job["component"] == "cpu"].iloc[0]
    assert cpu["energy_j"] > 0  # the busy loop burnt CPU time


def test_exit_status_of_a_workload_that_kills_itself(node, tmp_path):
    node.with_rapl()
    out = tmp_path / "run"
    status, output = node.run(out, mode="sigkill")
    assert status == 128 + 9, output
    records = read_markers(out / "markers.jsonl")
    assert records[-1]["event"] == "end" and records[-1]["status"] == 137
    frame = join(out / "trace.csv", out / "markers.jsonl")
    work = frame[frame["phase"] == "work"].iloc[0]
    assert not work["complete"] and work["energy_j"] >= 0
    assert frame[frame["phase"] == "load"]["complete"].all()


def test_sigterm_is_forwarded_and_its_status_returned(node, tmp_path):
    node.with_rapl()
    out = tmp_path / "run"
    flag = tmp_path / "checkpointed"
    proc = node.monitor(out, mode="term", arg=str(flag))
    try:
        wait_for(lambda: started(out, "work"), "the work phase")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 143, output
    assert flag.read_text() == "checkpoint"
    end = read_markers(out / "markers.jsonl")[-1]
    assert end["event"] == "end" and end["status"] == 143 and end["signals"] == [signal.SIGTERM]
    frame = join(out / "trace.csv", out / "markers.jsonl")
    assert not frame[frame["phase"] == "work"]["complete"].any()  # left by SystemExit: ok=false


def test_sidecar_stops_when_the_monitor_is_killed(node, tmp_path):
    node.with_rapl()
    out = tmp_path / "run"
    proc = node.monitor(out, mode="sleep")
    workload = None
    try:
        workload = wait_for(lambda: started(out, "work"), "the work phase")["pid"]
        sidecar = json.loads((out / "sidecar.json").read_text())["pid"]
        proc.kill()
        proc.wait(timeout=TIMEOUT)
        wait_for(lambda: gone(sidecar), "the sidecar to stop by itself", timeout=15)
    finally:
        proc.kill()
        if workload:
            kill_quietly(workload)
    frame = join(out / "trace.csv", out / "markers.jsonl")
    job = frame[frame["phase"] == "job"].iloc[0]
    assert not job["complete"] and job["seconds"] > 0
    assert not frame[frame["phase"] == "work"]["complete"].any()


def test_a_killed_sidecar_leaves_no_ipmitool_shell_behind(node, tmp_path, monkeypatch):
    node.with_ipmi()
    monkeypatch.setenv("FAKE_IPMI_LINGER", "1")  # like ipmitool on a LAN interface: it outlives its input
    out = tmp_path / "run"
    proc = node.monitor(out, mode="sleep")
    shells: list[psutil.Process] = []
    try:
        wait_for(lambda: started(out, "work"), "the work phase")
        sidecar = psutil.Process(json.loads((out / "sidecar.json").read_text())["pid"])
        shells = [p for p in sidecar.children() if p.cmdline()[-1:] == ["shell"]]
        assert len(shells) == 1
        sidecar.kill()
        time.sleep(0.5)
        assert not gone(shells[0].pid)  # orphaned, still there: only the monitor can clear it
        proc.send_signal(signal.SIGTERM)  # ends the workload, then the monitor
        output, _ = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 143, output
        wait_for(lambda: gone(shells[0].pid), "the orphaned ipmitool shell to be killed", timeout=5)
    finally:
        proc.kill()
        for shell in shells:
            kill_quietly(shell.pid)


@pytest.mark.parametrize("mode", ["session", "stall"])
def test_a_sensor_failing_mid_run_becomes_a_gap(node, tmp_path, monkeypatch, mode):
    node.with_rapl()
    node.with_ipmi(fail_after=4, mode=mode)  # open() takes one call, then three good readings
    node.config["ipmi"]["timeout_s"] = 0.3
    monkeypatch.setenv("WORK_S", "1.5")
    out = tmp_path / "run"
    status, output = node.run(out)
    assert status == 0, output
    trace = read_trace(out / "trace.csv")
    ipmi = trace[trace["sensor"] == "ipmi"]
    assert (ipmi["quantity"] == "power").sum() == 3
    errors = ipmi[ipmi["quantity"] == "error"]
    assert len(errors) >= 2 and errors["value"].isna().all()
    rapl = trace[trace["sensor"] == "rapl"]
    assert rapl["t_mono_ns"].max() > errors["t_mono_ns"].max() - S  # RAPL went on sampling
    frame = join(out / "trace.csv", out / "markers.jsonl")
    job = frame[frame["phase"] == "job"]
    assert job[job["sensor"] == "ipmi"]["coverage"].item() < 0.5
    assert (job[job["sensor"] == "rapl"]["coverage"] >= 0.5).all()


def test_rerun_after_success_sets_the_old_run_aside(node, tmp_path):
    node.with_rapl()
    out = tmp_path / "run"
    assert node.run(out, arg="3")[0] == 3  # a failed attempt ...
    with open(out / "markers.jsonl", "a") as f:
        f.write('{"event": "start", "pha')  # ... killed while writing a marker
    with open(out / "trace.csv", "a") as f:
        f.write("17000,12")  # ... and a trace row
    assert node.run(out)[0] == 0  # the retry appends: both attempts count
    assert not (out / "previous").exists()
    frame = join(out / "trace.csv", out / "markers.jsonl")
    jobs = frame[(frame["phase"] == "job") & (frame["sensor"] == "rapl") & (frame["channel"] == "package-0")]
    assert jobs["attempt"].tolist() == [1, 2] and jobs["complete"].tolist() == [False, True]
    assert (jobs["energy_j"] / jobs["seconds"]).to_numpy() == pytest.approx([CPU_W, CPU_W], rel=0.25)
    both = (out / "markers.jsonl").read_text()

    assert node.run(out)[0] == 0  # a forced rerun of a finished job: a new measurement
    previous = out / "previous"
    assert (previous / "markers.jsonl").read_text() == both
    assert (previous / "trace.csv").exists() and (previous / "sidecar.json").exists()
    records = read_markers(out / "markers.jsonl")
    assert [r["event"] for r in records].count("begin") == 1
    frame = join(out / "trace.csv", out / "markers.jsonl")
    assert set(frame["attempt"]) == {1}
    assert read_trace(out / "trace.csv")["t_mono_ns"].min() > records[0]["t_mono_ns"] - 5 * S


# --- bench/gpu_check.sh: the parts that run without a GPU ----------------------------------------


def _bench_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gpu_trace(path: Path, period: float = 0.025, seconds: float = 16.0) -> None:
    """An NVML channel as the sidecar writes it: the counter (exact integral of ``power``), instant power
    sampled at the same reads, and a 1-s running average as power_avg."""
    w = TraceWriter(path)
    for t in np.round(np.arange(0, seconds + 1e-9, period), 6):
        ns = T0 + round(t * S)
        avg = float(np.mean(power(np.linspace(max(t - 1, 0), t, 41))))
        w.write("nvml", [Reading("gpu0", "energy", exact(0, t), "J", "gpu"),
                         Reading("gpu0", "power", float(power(np.array(t))), "W", "gpu"),
                         Reading("gpu0", "power_avg", avg, "W", "gpu"),
                         Reading("gpu0", "utilisation", 100.0, "%", "gpu")], ns, ns)
    w.close()


def test_nvml_compare_counter_against_instant_power(tmp_path, capsys):
    compare = _bench_module("nvml_compare")
    gpu_trace(tmp_path / "trace.csv")
    write_markers(tmp_path / "markers.jsonl", [
        marker("begin", 0.5), marker("start", 1, phase="burn", index=0, pid=1),
        marker("stop", 13, phase="burn", index=0, pid=1, ok=True),
        marker("start", 13.5, phase="short", index=0, pid=1),
        marker("stop", 13.55, phase="short", index=0, pid=1, ok=True), marker("end", 15.5, status=0)])
    frame = compare.compare(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    burn = frame[frame["phase"] == "burn"].iloc[0]
    assert burn["counter_j"] == pytest.approx(exact(1, 13), rel=1e-6)
    assert burn["power_ratio"] == pytest.approx(1.0, abs=0.005)  # 25-ms trapezoid of a smooth profile
    assert burn["power_samples"] == 481 and burn["resolved"] and burn["power_coverage"] == pytest.approx(1.0)
    assert abs(burn["power_avg_ratio"] - 1) > abs(burn["power_ratio"] - 1)  # the 1-s average lags
    short = frame[frame["phase"] == "short"].iloc[0]
    assert not short["resolved"] and short["seconds"] == pytest.approx(0.05)
    ok, text = compare.verdict(frame)
    assert ok and "agree" in text

    assert compare.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "25 %" in out and "A100" in out and "H100" in out and "ratio" in out
    assert "NVML read every 25.0 ms" in out


def test_nvml_compare_disagreement_and_empty(tmp_path):
    compare = _bench_module("nvml_compare")
    w = TraceWriter(tmp_path / "trace.csv")
    for t in np.arange(0, 12.01, 0.1):  # a counter that runs at 300 W while instant power says 200 W
        ns = T0 + round(t * S)
        w.write("nvml", [Reading("gpu0", "energy", 300.0 * t, "J", "gpu"),
                         Reading("gpu0", "power", 200.0, "W", "gpu")], ns, ns)
    w.close()
    write_markers(tmp_path / "markers.jsonl", [marker("begin", 1), marker("end", 11, status=0)])
    frame = compare.compare(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    assert frame.iloc[0]["power_ratio"] == pytest.approx(2 / 3)
    ok, text = compare.verdict(frame)
    assert not ok and "DISAGREE" in text
    assert compare.main([str(tmp_path)]) == 2
    (tmp_path / "empty").mkdir()
    assert compare.main([str(tmp_path / "empty")]) == 1


def test_gpu_burn_phases_on_cpu(tmp_path):
    markers = tmp_path / "markers.jsonl"
    env = os.environ | {mk.ENV: str(markers)}
    subprocess.run([sys.executable, str(BENCH / "gpu_burn.py"), "--device", "cpu", "--long-s", "0.05",
                    "--pause-s", "0.01", "--short-s", "0.01", "--shorts", "2", "--size", "16"],
                   env=env, check=True, timeout=TIMEOUT, capture_output=True)
    got = [(p.name, p.index) for p in phases(read_markers(markers)) if p.complete]
    assert sorted(got, key=str) == sorted([("warmup", None), ("burn", 0), ("burn", 1), ("burn", 2), ("pause", 0),
                                           ("pause", 1), ("short", 0), ("short", 1)], key=str)


def test_gpu_check_fails_clearly_without_a_gpu(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed: no devices were found' >&2\nexit 9\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    root = BENCH.parent
    python = os.environ.get("SVBENCH_PYTHON", sys.executable)
    for path, message in ((f"{tmp_path / 'nothing'}:/usr/bin:/bin", "no nvidia-smi on PATH"),
                          (f"{bin_dir}:/usr/bin:/bin", "nvidia-smi -L failed")):
        env = os.environ | {"PATH": path, "SVBENCH_PYTHON": python, "TMPDIR": str(tmp_path)}
        if message.startswith("no nvidia-smi") and shutil.which("nvidia-smi", path=path):
            continue  # a real one in /usr/bin: the second case still runs
        proc = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], env=env, cwd=root, capture_output=True,
                              text=True, timeout=TIMEOUT)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not list(tmp_path.glob("svbench-gpu-check.*"))  # nothing created before the GPU is found


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


# --- issue 12: attempts on their own clocks, ranks, counters, closure, idle, bad inputs ------------


def test_requeue_on_another_node_each_attempt_on_its_own_clock(node, tmp_path):
    """Attempt 1 runs with another monotonic clock (a time namespace: another node's boot) and is SIGKILLed;
    attempt 2 runs normally into the same folder. Both count, each joined on its own clock."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a time namespace needs root and unshare")
    node.with_ipmi()
    out = tmp_path / "run"
    cmd = ["unshare", "--time", "--monotonic", "100000", *node.monitor_cmd(out, "sleep")]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: started(out, "work"), "the first attempt's work phase")
        time.sleep(1.5)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the node's OOM killer: no end marker, no checkpoint
        first.communicate(timeout=TIMEOUT)
    time.sleep(1.5)  # the orphaned sidecar notices and stops
    status, output = node.run(out)
    assert status == 0, output
    begins = [r for r in read_markers(out / "markers.jsonl") if r["event"] == "begin"]
    assert len(begins) == 2 and begins[0]["t_mono_ns"] > 90_000 * S > begins[1]["t_mono_ns"]  # two clocks
    frame = join(out / "trace.csv", out / "markers.jsonl")
    jobs = frame[(frame["phase"] == "job") & (frame["sensor"] == "ipmi")].set_index("attempt")
    assert sorted(jobs.index) == [1, 2]
    assert not jobs.loc[1, "complete"] and jobs.loc[2, "complete"]
    for attempt in (1, 2):
        assert jobs.loc[attempt, "energy_j"] == pytest.approx(NODE_W * jobs.loc[attempt, "seconds"], rel=0.02)
    assert 1.5 < jobs.loc[1, "seconds"] < 6  # from its begin to its last sample, not across clocks
    assert 0.5 < jobs.loc[2, "seconds"] < 6
    work = frame[(frame["phase"] == "work") & (frame["sensor"] == "ipmi")].set_index("attempt")
    assert sorted(work.index) == [1, 2] and not work.loc[1, "complete"]


def test_several_ranks_mark_each_epoch_once_and_rest_of_job_is_not_negative(tiny_corpus, tmp_path, monkeypatch):
    """A real two-process torchrun of a tiny training under svbench monitor."""
    from dataclasses import asdict

    from support import BIN
    from support import DDP_RECIPE as RECIPE
    from support import DDP_SPEC as SPEC

    for var in [v for v in os.environ if v.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("PATH", f"{BIN}:{os.environ['PATH']}")
    out = tmp_path / "energy"
    recipe = {k: v for k, v in asdict(RECIPE).items() if k != "extra"}
    (tmp_path / "energy.json").write_text(json.dumps({"sensors": [], "estimate": {"interval_s": 0.05}}))
    run = subprocess.run(
        [str(BIN / "svbench"), "monitor", "--out", str(out), "--config", str(tmp_path / "energy.json"), "--",
         str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "--no-python", "svbench", "train",
         "--features", str(tiny_corpus / "features" / "train"), "--manifest", str(tiny_corpus / "corpus" / "train.tsv"),
         "--arch", json.dumps(SPEC.to_dict()), "--recipe", json.dumps(recipe), "--seed", "0",
         "--out", str(tmp_path / "model")], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    starts = [r for r in read_markers(out / "markers.jsonl") if r["event"] == "start" and r["phase"] == "epoch"]
    assert [r["index"] for r in starts] == [0, 1, 2]  # rank 0 alone marks
    frame = join(out / "trace.csv", out / "markers.jsonl")
    cpu = frame[frame["channel"] == "cpu"]
    epochs = cpu[cpu["phase"] == "epoch"]
    job, rest = cpu[cpu["phase"] == "job"].iloc[0], cpu[cpu["phase"] == "rest_of_job"].iloc[0]
    assert len(epochs) == 3 and epochs["seconds"].sum() <= job["seconds"]
    assert rest["seconds"] >= 0 and rest["energy_j"] >= 0
    assert epochs["energy_j"].sum() + rest["energy_j"] == pytest.approx(job["energy_j"], rel=1e-6)


def test_phases_of_several_processes_merge_into_one_span():
    records = [marker("begin", 0), marker("start", 1, phase="epoch", index=0, pid=1),
               marker("start", 1.2, phase="epoch", index=0, pid=2), marker("stop", 5, phase="epoch", index=0, pid=1),
               marker("stop", 5.3, phase="epoch", index=0, pid=2), marker("end", 6, status=0)]
    got = [p for p in phases(records) if p.name == "epoch"]
    assert len(got) == 1 and got[0].start_mono_ns == T0 + 1 * S and got[0].stop_mono_ns == T0 + int(5.3 * S)


def test_only_rank_zero_marks(monkeypatch, tmp_path):
    path = tmp_path / "markers.jsonl"
    monkeypatch.setenv(mk.ENV, str(path))
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        with phase("epoch", int(rank)):
            pass
    assert [(r["event"], r["index"]) for r in read_markers(path)] == [("start", 0), ("stop", 0)]


def _session_trace(path: Path, sessions: list[tuple[str, float, np.ndarray, Callable[[float], list[Reading]]]]):
    """Write a trace of several sidecar sessions: (id, clock offset s, times, readings at t) each."""
    from svbench.energy.trace import SESSION_QUANTITY, SESSION_SENSOR

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
    trace, markers = tmp_path / "trace file.csv", tmp_path / "markers.jsonl"
    replay(trace, np.arange(0, 2, 0.1))
    write_markers(markers, [marker("begin", 0), marker("end", 1, status=0)])
    broken = {"no trace": (trace, None), "empty trace": (trace, ""), "no markers": (markers, None),
              "empty markers": (markers, ""),
              "no begin": (markers, json.dumps(marker("start", 0, phase="x", index=None, pid=1)) + "\n")}[case]
    path, text = broken
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    out = tmp_path / "energy.csv"
    proc = subprocess.run([sys.executable, "-m", "svbench.cli", "energy", "join", "--trace", str(trace),
                           "--markers", str(markers), "--out", str(out)], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 2 and str(path) in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_baseline_is_its_own_phase_before_the_job(node, tmp_path):
    """`--baseline 1`: a 0.8-s workload is a 0.8-s job (plus start-up), not 1.8 s."""
    out = tmp_path / "run"
    status, output = node.run(out, baseline=1.0)
    assert status == 0, output
    frame = join(out / "trace.csv", out / "markers.jsonl")
    est = frame[frame["sensor"] == "estimate"]
    base = est[est["phase"] == "idle_baseline"].iloc[0]
    job = est[est["phase"] == "job"].iloc[0]
    assert base["seconds"] == pytest.approx(1.0, abs=0.1)
    assert job["seconds"] >= 1.1  # load 0.3 s + work 0.8 s, and the workload's start-up
    assert job["t_start_wall_ns"] >= base["t_end_wall_ns"]  # the workload alone: after the baseline, not around it


def test_a_rapl_counter_reset_mid_job_is_not_counted_as_a_wrap(node, tmp_path):
    """Through the monitor: the package counter restarts from 0 one second in; the job's energy stays near
    20 W × its seconds (a reset unwrapped as a wrap would add the 60-J range) and coverage says a read is
    missing."""
    node.with_rapl(reset_after_s=1.0)
    node.monkeypatch.setenv("WORK_S", "2.0")
    out = tmp_path / "run"
    status, output = node.run(out)
    assert status == 0, output
    trace = read_trace(out / "trace.csv")
    assert (trace["quantity"] == "counter_break").sum() == 1
    frame = join(out / "trace.csv", out / "markers.jsonl")
    job = frame[(frame["phase"] == "job") & (frame["channel"] == "package-0")].iloc[0]
    assert job["energy_j"] == pytest.approx(CPU_W * job["seconds"], rel=0.15)
    assert 0.8 < job["coverage"] < 1.0 and "counter break" in job["notes"]


def test_a_node_meter_below_the_gpus_is_not_the_total(node, tmp_path):
    """Fake NVML (300 W) and RAPL (25 W) under a BMC that reads 100 W: it leaves the GPUs out."""
    from svbench.energy.join import total_rows, total_sources

    node.all_sensors()
    node.monkeypatch.setenv("FAKE_IPMI_WATTS", "100")
    out = tmp_path / "run"
    status, output = node.run(out)
    assert status == 0, output
    frame = join(out / "trace.csv", out / "markers.jsonl")
    job = frame[frame["phase"] == "job"]
    assert total_sources(job)[0] == "node+gpu"
    seconds = job[job["component"] == "node"]["seconds"].iloc[0]
    assert total_rows(job)["energy_j"].sum() == pytest.approx((100 + GPU_W) * seconds, rel=0.25)
    rest = job[job["component"] == "rest_of_node"].iloc[0]
    assert rest["energy_j"] == pytest.approx((100 - CPU_W - DRAM_W) * seconds, rel=0.3)
    assert "leaves the GPUs out" in rest["notes"]
