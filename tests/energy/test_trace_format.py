"""The compact trace (``trace.csv.zst``): what a SIGKILL leaves is read back exactly, and earlier CSV traces
still join as they did."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes.trace_samples import S, rows_of, session_reads
from support import REPO as ROOT

from svbench.energy.join import join
from svbench.energy.node_join import join_nodes
from svbench.errors import UserError
from svbench.instrument.nodes import LEGACY_TRACE, MARKERS, TRACE, trace_path
from svbench.instrument.sensors.base import Reading
from svbench.instrument.trace import ZSTD_MAGIC, TraceWriter, iter_trace, wall_range

LEGACY = ROOT / "tests" / "data" / "legacy_trace"  # trace.csv, markers.jsonl, energy.csv of svbench at ca5c74f

# writes one session as the sidecar does (TraceWriter, FLUSH_S), printing how many reads are flushed
CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from fakes.trace_samples import session_reads
from svbench.instrument.sidecar import FLUSH_S
from svbench.instrument.trace import TraceWriter
reads = session_reads({seed}, 3000)
w = TraceWriter({path!r}, flush_s=FLUSH_S)
w.write_batch(reads[:1], flush=True)
print(1, flush=True)
for i, read in enumerate(reads[1:], start=2):
    w.write_batch([read])
    if i % 7 == 0:
        w.write_batch([], flush=True)
        print(i, flush=True)
    time.sleep(0.0003)
"""


def _rows(path: Path) -> dict[str, list[tuple]]:
    frames = list(iter_trace(path))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["session"])
    out: dict[str, list[tuple]] = {}
    for row in frame.itertuples(index=False):
        value = None if np.isnan(row.value) else row.value
        out.setdefault(row.session, []).append((row.t_wall_ns, row.t_mono_ns, row.sensor, row.channel, row.quantity,
                                                value, row.unit, row.component, bool(row.estimated), row.session))
    return out


def _check_prefix(got: list[tuple], expected: list[tuple], at_least: int) -> None:
    """Every row read back is the row written there (nothing invented), and no flushed row is missing."""
    assert got == expected[:len(got)]
    assert len(got) >= at_least


def _markers(sessions: list[str]) -> list[dict]:
    out = []
    for seed, session in enumerate(sessions):
        mono0 = (1_000 + 100 * seed) * S
        wall0 = mono0 + 1_760_000_000 * S + seed * S

        def m(event: str, t: float, wall0: int = wall0, mono0: int = mono0, **kw: object) -> dict:
            return {"event": event, "t_wall_ns": wall0 + int(t * S), "t_mono_ns": mono0 + int(t * S), **kw}

        out += [m("begin", 0.01, session=session, attempt=seed + 1),
                m("start", 0.5, phase="epoch", index=0, pid=1), m("stop", 2.0, phase="epoch", index=0, pid=1, ok=True)]
    return out


def _same_samples_as_csv(trace: Path, out: Path) -> None:
    """The rows of ``trace`` written again by the CSV writer, one write per sensor read."""
    w = TraceWriter(out)
    for chunk in iter_trace(trace):
        for (_, wall, mono, sensor), g in chunk.groupby(["session", "t_wall_ns", "t_mono_ns", "sensor"], sort=False):
            w.write(sensor, [Reading(r.channel, r.quantity, r.value, r.unit, r.component, bool(r.estimated))
                             for r in g.itertuples()], int(wall), int(mono))
    w.close()


def test_sigkilled_sidecar_writer_leaves_every_flushed_record_and_the_same_energy(tmp_path):
    path = tmp_path / TRACE
    rng = np.random.default_rng(26)
    flushed: dict[str, int] = {}
    for seed in range(16):  # each a requeued attempt appending its session to the killed ones' trace
        code = CHILD.format(tests=str(ROOT / "tests"), seed=seed, path=str(path))
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        first = proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the writer ended before it was killed: make its session longer"
        flushed[f"s{seed}"] = max(int(x) for x in (first + rest).split())
    assert path.read_bytes()[:4] == ZSTD_MAGIC  # the compact form, not the long CSV
    got = _rows(path)
    assert list(got) == list(flushed)  # every session, in file order
    for seed, (session, n) in enumerate(flushed.items()):
        reads = session_reads(seed, 3000)
        _check_prefix(got[session], rows_of(reads, session), len(rows_of(reads[:n], session)))
    markers = tmp_path / MARKERS
    markers.write_text("".join(json.dumps(m) + "\n" for m in _markers(list(flushed))))
    _same_samples_as_csv(path, tmp_path / LEGACY_TRACE)
    pd.testing.assert_frame_equal(join(path, markers), join(tmp_path / LEGACY_TRACE, markers))


def test_a_trace_cut_at_any_byte_keeps_every_flushed_read_and_takes_a_new_session(tmp_path):
    whole = tmp_path / "whole" / TRACE
    whole.parent.mkdir()
    reads = session_reads(0, 400)
    w = TraceWriter(whole, flush_s=60.0)
    ends = []
    for read in reads:
        w.write_batch([read], flush=True)
        ends.append(whole.stat().st_size)
    w.close()
    data, expected = whole.read_bytes(), rows_of(reads, "s0")
    rng = np.random.default_rng(7)
    cuts = sorted({*rng.integers(0, len(data) + 1, 150).tolist(), 0, 1, 3, 4, 5, len(data) - 1, len(data)})
    for cut in cuts:
        path = tmp_path / f"cut{cut}" / TRACE
        path.parent.mkdir()
        path.write_bytes(data[:cut])
        flushed = sum(1 for end in ends if end <= cut)
        _check_prefix(_rows(path).get("s0", []), expected, len(rows_of(reads[:flushed], "s0")))
        before = _rows(path).get("s0", [])
        w = TraceWriter(path)  # the next attempt closes the torn frame and appends its own
        w.write_batch(session_reads(1, 30), flush=True)
        w.close()
        after = _rows(path)
        assert after.get("s0", []) == before
        assert after["s1"] == rows_of(session_reads(1, 30), "s1")


def test_a_csv_trace_of_the_earlier_version_joins_to_the_same_energy(tmp_path):
    folder = tmp_path / "job"
    shutil.copytree(LEGACY, folder)
    recorded = pd.read_csv(folder / "energy.csv")
    (folder / "energy.csv").unlink()
    assert trace_path(folder) == folder / LEGACY_TRACE  # found where no compact trace is
    join_nodes(folder, 1, folder / "energy.csv")
    pd.testing.assert_frame_equal(pd.read_csv(folder / "energy.csv"), recorded)
    # a new attempt of that job (a sidecar of this version) goes on appending to the same CSV trace
    w = TraceWriter(trace_path(folder))
    w.write("ipmi", [Reading("node", "power", 900.0, "W", "node")], 1_760_000_200 * S, 9_100 * S)
    w.close()
    assert not (folder / TRACE).exists()
    last = f"{1_760_000_200 * S},{9_100 * S},ipmi,node,power,900.0,W,node,0\n"
    assert (folder / LEGACY_TRACE).read_text().endswith(last)


def test_compact_and_csv_forms_read_back_the_same_rows(tmp_path):
    reads = session_reads(3, 500) + session_reads(4, 50)
    for name in (TRACE, LEGACY_TRACE):
        w = TraceWriter(tmp_path / name)
        w.write_batch(reads)
        w.close()
    assert _rows(tmp_path / TRACE) == _rows(tmp_path / LEGACY_TRACE)
    assert wall_range(tmp_path / TRACE) == wall_range(tmp_path / LEGACY_TRACE) is not None  # the timelines' span
    assert (tmp_path / TRACE).stat().st_size * 4 < (tmp_path / LEGACY_TRACE).stat().st_size
    chunks = list(iter_trace(tmp_path / TRACE, chunk_rows=7))  # a read's rows never straddle two chunks
    stamps = [set(c["t_mono_ns"]) for c in chunks]
    assert all(not (a & b) for a, b in zip(stamps, stamps[1:], strict=False))
    shown = subprocess.run([sys.executable, "-m", "svbench.instrument.trace", str(tmp_path / TRACE)], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    assert len(shown.splitlines()) == 1 + sum(len(rs) for _, rs, _, _ in reads)


def test_a_compact_trace_of_format_2_is_refused_by_name(tmp_path):
    """svbench 694094d wrote counters as differences (format 2): read as whole values they would be wrong."""
    import zstandard

    path = tmp_path / TRACE
    path.write_bytes(zstandard.ZstdCompressor().compress(b"\n#svbench-trace,2,\n"))
    with pytest.raises(UserError, match="another svbench version"):
        list(iter_trace(path))


@pytest.mark.parametrize("damage", ["a value lost", "a read line cut", "a key line cut"])
def test_a_damaged_line_inside_a_session_is_refused_and_a_torn_last_line_is_not(tmp_path, damage):
    """Stamps are differences from the previous read: a damaged line read past would shift every later stamp.
    Only a session's last line may be cut (a kill); then the next session's header or the end follows."""
    import zstandard

    w = TraceWriter(tmp_path / "whole.zst")
    w.write_batch(session_reads(5, 40))
    w.close()
    lines = zstandard.ZstdDecompressor().stream_reader(
        (tmp_path / "whole.zst").read_bytes(), read_across_frames=True).read().decode().split("\n")
    at = {"a value lost": next(i for i, s in enumerate(lines) if s[:1].isdigit()) + 3,
          "a read line cut": next(i for i, s in enumerate(lines) if s[:1].isdigit()) + 5,
          "a key line cut": next(i for i, s in enumerate(lines) if s.startswith("k,"))}[damage]
    cut = lines[at][: len(lines[at]) // 2] if damage != "a value lost" else lines[at].replace(",", ",,", 1)
    damaged, torn = tmp_path / "damaged.zst", tmp_path / "torn.zst"
    damaged.write_bytes(zstandard.ZstdCompressor().compress("\n".join(lines[:at] + [cut] + lines[at + 1:]).encode()))
    with pytest.raises(UserError, match="damaged line .* inside a session"):
        list(iter_trace(damaged))
    # the same line as a kill leaves it: the session's last, then a new session
    torn.write_bytes(zstandard.ZstdCompressor().compress("\n".join(lines[:at] + [cut, "", "#svbench-trace,3,", ""])
                                                         .encode()))
    whole = pd.concat(list(iter_trace(tmp_path / "whole.zst")), ignore_index=True)
    frames = list(iter_trace(torn))  # every read before the cut line, exactly
    got = pd.concat(frames, ignore_index=True) if frames else whole.iloc[:0]
    assert len(got) < len(whole)
    pd.testing.assert_frame_equal(got, whole.iloc[: len(got)])


def test_a_compact_trace_cut_inside_its_first_bytes_is_empty_for_every_reader(tmp_path):
    """A sidecar killed before its first flush: the timelines' span (wall_range) read it as CSV and crashed."""
    path = tmp_path / TRACE
    path.write_bytes(ZSTD_MAGIC[:2])
    assert list(iter_trace(path)) == [] and wall_range(path) is None
