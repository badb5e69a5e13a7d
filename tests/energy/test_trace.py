"""The trace CSV: round trip and torn rows."""

from __future__ import annotations

import numpy as np
import pytest
from fakes.replay import T0, S

from svbench.instrument.sensors.base import Reading
from svbench.instrument.trace import COLUMNS, TraceWriter, read_trace


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
