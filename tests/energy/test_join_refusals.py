"""Markers and traces that would double or hide a job (issue 25, class 3): each is refused with one line naming
the file, through the CLI, and nothing is written."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from fakes.node import TIMEOUT
from fakes.replay import marker, replay, write_markers

HEADER = "t_wall_ns,t_mono_ns,sensor,channel,quantity,value,unit,component,estimated\n"


def _begin(session: str | None = "s1") -> dict:
    return marker("begin", 0, **({"session": session} if session else {})).to_json()


def _case(folder, case: str) -> str:
    """Write the case's trace and markers into ``folder``; return what the message must say."""
    trace, markers = folder / "trace.csv", folder / "markers.jsonl"
    good = [marker("begin", 0), marker("start", 0.5, phase="epoch", index=0, pid=1),
            marker("stop", 1.5, phase="epoch", index=0, pid=1, ok=True), marker("end", 1.9, status=0)]
    if case == "begin twice":  # the same begin line twice: one session counted as two attempts
        replay(trace, np.arange(0, 2, 0.1))
        records = [json.dumps(r.to_json()) for r in good]
        markers.write_text("\n".join([records[0], *records]) + "\n")
        return "appears twice"
    if case == "two begins of one session":
        replay(trace, np.arange(0, 2, 0.1))
        write_markers(markers, [marker("begin", 0, session="abc"), marker("end", 0.9, status=143),
                                marker("begin", 1.0, session="abc"), marker("end", 1.9, status=0)])
        return "session 'abc'"
    write_markers(markers, good)
    if case == "header only":
        trace.write_text(HEADER)
    elif case == "session row only":
        trace.write_text(HEADER + "1,1,sidecar,s1,session,0.0,,other,0\n")
    elif case == "counter breaks only":
        trace.write_text(HEADER + "".join(f"{k},{k},rapl,package-0,counter_break,1.0,,cpu,0\n" for k in range(3)))
    return "no sensor reading"


CASES = ["begin twice", "two begins of one session", "header only", "session row only", "counter breaks only"]


@pytest.mark.parametrize("case", CASES)
def test_the_join_refuses_what_would_double_or_hide_a_job(tmp_path, case):
    folder = tmp_path / "job folder"
    folder.mkdir()
    said = _case(folder, case)
    out = folder / "energy.csv"
    run = subprocess.run([sys.executable, "-m", "svbench.cli", "energy", "join", "--dir", str(folder), "--out",
                          str(out)], capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 2, run.stdout + run.stderr
    assert said in run.stderr and str(folder) in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not out.exists()


def test_attempts_of_markers_without_sessions_stay_apart(tmp_path):
    """An older svbench wrote no session ids: two begins are two attempts, as before."""
    from svbench.energy.join import join

    replay(tmp_path / "trace.csv", np.arange(0, 2, 0.1))
    write_markers(tmp_path / "markers.jsonl", [marker("begin", 0), marker("end", 0.9, status=143),
                                               marker("begin", 1.0), marker("end", 1.9, status=0)])
    frame = join(tmp_path / "trace.csv", tmp_path / "markers.jsonl")
    assert sorted(frame[frame["phase"] == "job"]["attempt"].unique()) == [1, 2]
