"""Phase markers: ``phase()``, the Marker record and its reader, pairing into phases, ranks."""

from __future__ import annotations

import json
import os

import pytest
from fakes.replay import T0, S, marker, write_markers

from svbench.errors import UserError
from svbench.instrument import markers as mk
from svbench.instrument.markers import Marker, phase, phases, read_markers


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
    assert [(r.event, r.phase, r.index) for r in records] == [
        ("start", "load", None), ("stop", "load", None), ("start", "epoch", 0), ("stop", "epoch", 0),
        ("start", "epoch", 1), ("stop", "epoch", 1), ("start", "validate", None), ("stop", "validate", None)]
    assert records[2].extra["lr"] == 0.1 and records[2].pid == os.getpid()
    assert all(r.t_mono_ns > 0 and r.t_wall_ns > 0 for r in records)
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
    assert [r.event for r in read_markers(path)] == ["begin", "start"]
    with open(path, "a") as f:
        f.write("\n" + json.dumps({"event": "end", "status": 0, "t_mono_ns": 1, "t_wall_ns": 1}) + "\n")
    with pytest.raises(ValueError, match=r"markers\.jsonl:3:"):
        read_markers(path)
    assert read_markers(tmp_path / "absent.jsonl") == []


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


def test_phases_of_several_processes_merge_into_one_span():
    records = [marker("begin", 0), marker("start", 1, phase="epoch", index=0, pid=1),
               marker("start", 1.2, phase="epoch", index=0, pid=2), marker("stop", 5, phase="epoch", index=0, pid=1),
               marker("stop", 5.3, phase="epoch", index=0, pid=2), marker("end", 6, status=0)]
    got = [p for p in phases(records) if p.name == "epoch"]
    assert len(got) == 1 and got[0].start_mono_ns == T0 + 1 * S and got[0].stop_mono_ns == T0 + int(5.3 * S)


def test_only_the_first_process_of_the_monitors_node_marks(monkeypatch, tmp_path):
    """Local rank 0 marks (node 1's first process is global rank 2 of 2 nodes × 2 processes: it marks its own
    node's file); a process on another node than the file's monitor never writes there (another clock)."""
    path = tmp_path / "markers.jsonl"
    monkeypatch.setenv(mk.ENV, str(path))
    monkeypatch.setenv("SVBENCH_MARKERS_NODE", "d1")
    monkeypatch.setenv("SLURMD_NODENAME", "d1")
    for rank, local in (("1", "1"), ("2", "0")):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", local)
        with phase("epoch", int(rank)):
            pass
    monkeypatch.setenv("SLURMD_NODENAME", "d2")  # srun tasks of another node, under this node's monitor
    with phase("epoch", 9):
        pass
    assert [(r.event, r.index) for r in read_markers(path)] == [("start", 2), ("stop", 2)]


def test_a_marker_keeps_every_key_of_its_line(tmp_path):
    line = {"event": "begin", "t_wall_ns": 5, "t_mono_ns": 7, "session": "abc", "attempt": 2, "pid": 9,
            "sidecar_started_mono_ns": 3, "slurm_job_id": "42", "job": {"exclusive": True}, "command": ["sleep", "1"]}
    got = Marker.from_json(line)
    assert (got.event, got.session, got.attempt, got.job, got.slurm_job_id) == ("begin", "abc", 2,
                                                                                 {"exclusive": True}, "42")
    assert got.extra == {"command": ["sleep", "1"]}
    assert got.to_json() == line and Marker.from_json(got.to_json()) == got
    assert got.get("command") == ["sleep", "1"] and got.get("session") == "abc" and got.get("status", 0) == 0
    path = tmp_path / "markers.jsonl"
    path.write_text(json.dumps(line) + "\n" + json.dumps({"event": "end", "status": 0}) + "\n")
    with pytest.raises(UserError, match=r"markers\.jsonl:2: not a marker"):
        read_markers(path)


def test_sync_runs_at_both_edges_before_the_stamp(monkeypatch, tmp_path):
    path = tmp_path / "markers.jsonl"
    monkeypatch.setenv(mk.ENV, str(path))
    calls = []

    def sync() -> None:
        calls.append(len(read_markers(path)))  # how many markers were written when it ran

    with phase("epoch", 0, sync=sync):
        calls.append("body")
    assert calls == [0, "body", 1]  # before the start marker, and after the body but before the stop marker
    monkeypatch.setenv("LOCAL_RANK", "1")
    with phase("epoch", 1, sync=sync):
        pass
    assert calls == [0, "body", 1]  # a rank that does not mark does not synchronise either


def test_an_explicit_markers_path_marks_whatever_the_rank(monkeypatch, tmp_path):
    monkeypatch.delenv(mk.ENV, raising=False)
    monkeypatch.setenv("RANK", "3")
    path = tmp_path / "own.jsonl"
    with phase(mk.BASELINE, markers_path=path):
        pass
    assert [(r.event, r.phase, r.ok) for r in read_markers(path)] == [("start", mk.BASELINE, None),
                                                                         ("stop", mk.BASELINE, True)]


@pytest.mark.parametrize(("jobs", "expected"), [
    ([], "unknown"),
    ([{}], "shared node: not under SLURM, other processes may share it"),
    ([{"slurm_job_id": "1", "exclusive": True}, {"slurm_job_id": "1", "exclusive": True}], "exclusive node"),
    ([{"slurm_job_id": "1", "exclusive": True}, {"slurm_job_id": "1", "exclusive": False}],
     "shared node: node-level figures include other jobs"),
    ([{"slurm_job_id": "1"}], "SLURM job, exclusivity unknown"),
    ([None], "shared node: not under SLURM, other processes may share it"),
])
def test_node_sharing_from_the_job_context_of_every_attempt(tmp_path, jobs, expected):
    path = tmp_path / "markers.jsonl"
    write_markers(path, [marker("begin", i, job=job) for i, job in enumerate(jobs)])
    assert mk.node_sharing(path) == expected
    assert mk.node_sharing(tmp_path / "absent.jsonl") == "unknown"


def test_a_training_script_marks_phases_from_the_instrument_without_its_weight() -> None:
    """`from svbench.instrument import phase` (issue 27: the instrument's public face) loads no sensor, pandas,
    numpy or torch into the measured process."""
    import subprocess
    import sys

    import pytest

    import svbench.instrument as instrument

    code = ("import sys; from svbench.instrument import phase; "
            "heavy = [m for m in ('pandas', 'numpy', 'torch', 'svbench.instrument.sensors') if m in sys.modules]; "
            "assert callable(phase) and not heavy, heavy")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert instrument.run_monitored.__module__ == "svbench.instrument.monitor"
    with pytest.raises(AttributeError, match="nothing_here"):
        instrument.nothing_here  # noqa: B018
