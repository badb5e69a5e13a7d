"""The sensor trace: one long CSV row per reading, appended and flushed while the job runs.

Columns: ``t_wall_ns t_mono_ns sensor channel quantity value unit component estimated``.
Wall-clock time places a reading in the calendar (grid carbon intensity); monotonic time places it
against the job's phase markers on the same host without NTP steps. A trace cut short by a killed
job still parses: a last line without its newline, or with missing fields, is dropped.

The writer runs in the sidecar, beside the measured job, so it is kept cheap: pandas is imported only
by the reader, and the fixed part of each row (sensor, channel, quantity, unit, component, estimated)
is formatted once per channel and reused.
"""

from __future__ import annotations

import csv
import io
import math
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from svbench.energy.sensors.base import Reading
from svbench.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

# the first row a sidecar writes: channel = the session's id; it opens the rows of one sidecar run
SESSION_SENSOR, SESSION_QUANTITY = "sidecar", "session"
COLUMNS = [
    "t_wall_ns", "t_mono_ns", "sensor", "channel", "quantity", "value", "unit", "component", "estimated",
]


class TraceWriter:
    """Thread-safe appender, flushed to the OS at most ``flush_s`` after a row was written.

    ``flush_s=0`` flushes every write. The sidecar writes once per wake-up (every sensor read then due,
    in one ``write_batch()``) and flushes every 0.5 s: a SIGKILL loses at most the last half second of
    readings, under the one second DESIGN.md allows, for a fifth of the write calls at 10 Hz.
    """

    def __init__(self, path: Path, flush_s: float = 0.0) -> None:
        self.path = Path(path)
        drop_torn_tail(self.path)  # else this session's first row would be glued to a killed one's last
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="", buffering=1 << 16)  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()
        self._fixed: dict[tuple, tuple[str, str]] = {}
        self.flush_s = flush_s
        self._flushed = time.monotonic()
        if new:
            self._file.write(",".join(COLUMNS) + "\n")
            self._file.flush()

    def write(self, sensor: str, readings: Iterable[Reading], t_wall_ns: int | None = None,
              t_mono_ns: int | None = None) -> None:
        t_wall_ns = time.time_ns() if t_wall_ns is None else t_wall_ns
        t_mono_ns = time.monotonic_ns() if t_mono_ns is None else t_mono_ns
        self.write_batch([(sensor, readings, t_wall_ns, t_mono_ns)])

    def write_batch(self, batch: Iterable[tuple[str, Iterable[Reading], int, int]], flush: bool = False) -> None:
        """Append the readings of several sensor reads, ``(sensor, readings, t_wall_ns, t_mono_ns)``
        each, with one write; flush now if ``flush`` or if the last flush is ``flush_s`` old."""
        parts = []
        fixed = self._fixed
        for sensor, readings, t_wall_ns, t_mono_ns in batch:
            stamp = f"{t_wall_ns},{t_mono_ns},"
            for r in readings:
                key = (sensor, r.channel, r.quantity, r.unit, r.component, r.estimated)
                cols = fixed.get(key)
                if cols is None:
                    cols = fixed[key] = _fixed_columns(*key)
                value = r.value
                text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))
                parts.append(f"{stamp}{cols[0]},{text},{cols[1]}\n")
        if not parts and not flush:
            return
        text = "".join(parts)
        with self._lock:
            if self._file.closed:
                return  # a sensor call that hung past the sidecar's stop: its late reading is dropped
            self._file.write(text)
            now = time.monotonic()
            if flush or now - self._flushed >= self.flush_s:
                self._file.flush()
                self._flushed = now

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                self._file.close()


def _csv_line(fields: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()[:-1]


def _fixed_columns(sensor: str, channel: str, quantity: str, unit: str, component: str,
                   estimated: bool) -> tuple[str, str]:
    """The columns before and after ``value`` (``sensor,channel,quantity`` and ``unit,component,estimated``),
    quoted as the csv module would."""
    return _csv_line([sensor, channel, quantity]), _csv_line([unit, component, int(estimated)])


def drop_torn_tail(path: Path) -> None:
    """Cut a last line that has no newline (a killed writer), so appending starts on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, io.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


CHUNK_ROWS = 400_000  # rows parsed at a time: bounds the join's memory whatever the trace's length
_DTYPES = {"sensor": str, "channel": str, "quantity": str, "unit": str, "component": str}


def iter_trace(path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The trace in file order, ``chunk_rows`` rows at a time, cleaned as :func:`read_trace` cleans it, with
    a ``session`` column: the id of the sidecar session a row belongs to ("" before any session row, as in
    traces of svbench versions that wrote none). The rows of one sidecar read (one time stamp) never
    straddle two chunks. A torn last line or a torn row (a kill mid-write) is dropped.
    """
    import pandas as pd  # here, not at the top: the sidecar imports this module and never reads a trace

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    session = ""
    held: pd.DataFrame | None = None
    reader = pd.read_csv(path, dtype=_DTYPES, keep_default_na=False, na_values={"value": [""]},
                         on_bad_lines="skip", chunksize=chunk_rows)
    for raw in reader:
        missing = [c for c in COLUMNS if c not in raw.columns]
        if missing:
            raise UserError(f"{path}: not an svbench trace (missing columns {missing})")
        frame = _clean(raw)
        if held is not None:
            frame = pd.concat([held, frame], ignore_index=True)
        if not len(frame):
            held = None
            continue
        # keep the last stamp's rows for the next chunk: a read's counter break must reach the join with its reading
        last = frame["t_mono_ns"].to_numpy()[-1]
        tail = len(frame)
        while tail > 0 and frame["t_mono_ns"].iat[tail - 1] == last:
            tail -= 1
        held = frame.iloc[tail:] if tail > 0 else None
        frame = frame.iloc[:tail] if tail > 0 else frame
        session = _label_sessions(frame, session)
        yield frame
    if held is not None and len(held):
        _label_sessions(held, session)
        yield held


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop rows torn by a kill (fewer fields, a cut last field) and give the columns their types."""
    import pandas as pd

    whole = frame["estimated"].astype(str).isin(["0", "1", "True", "False", "true", "false"])
    t_wall = pd.to_numeric(frame["t_wall_ns"], errors="coerce")
    t_mono = pd.to_numeric(frame["t_mono_ns"], errors="coerce")
    keep = (whole & t_wall.notna() & t_mono.notna()).to_numpy()
    frame = frame.loc[keep, COLUMNS].copy()
    frame["t_wall_ns"] = t_wall[keep].astype("int64")
    frame["t_mono_ns"] = t_mono[keep].astype("int64")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame["estimated"] = frame["estimated"].astype(str).isin(["1", "True", "true"])
    return frame.reset_index(drop=True)


def _label_sessions(frame: pd.DataFrame, session: str) -> str:
    """Add the ``session`` column (session rows open a session; the first rows continue ``session``);
    returns the session open at the end of the frame."""
    is_session = ((frame["quantity"] == SESSION_QUANTITY) & (frame["sensor"] == SESSION_SENSOR)).to_numpy()
    if not is_session.any():
        frame["session"] = session
        return session
    labels = frame["channel"].where(is_session).ffill().fillna(session)
    frame["session"] = labels.to_numpy()
    return str(labels.iat[-1])


def read_trace(path: Path) -> pd.DataFrame:
    """The readings of a trace in one frame, sorted by monotonic time (for small traces: tools, tests);
    session rows are left out.

    The energy join streams the trace with :func:`iter_trace` instead. An empty or header-only trace gives
    an empty frame; a torn last line is dropped.
    """
    import pandas as pd

    chunks = [c[c["quantity"] != SESSION_QUANTITY].drop(columns="session") for c in iter_trace(Path(path))]
    if not chunks:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    frame = pd.concat(chunks, ignore_index=True)
    return frame.sort_values("t_mono_ns", kind="stable").reset_index(drop=True)
