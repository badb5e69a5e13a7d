"""The sensor trace: every reading the sidecar takes, appended and flushed while the job runs.

Every reading is a row ``t_wall_ns t_mono_ns sensor channel quantity value unit component estimated``.
Wall-clock time places a reading in the calendar (grid carbon intensity); monotonic time places it
against the job's phase markers on the same host without NTP steps.

Two forms on disk, one reader (:func:`iter_trace` tells them by their first bytes):

- ``trace.csv.zst`` (:data:`svbench.energy.nodes.TRACE`, what the sidecar writes): a zstd stream of compact
  text lines (:data:`COMPACT_FORMAT`), flushed as a zstd *block* at every trace flush, so the compression
  window survives a flush and a SIGKILL loses only what was not flushed yet. The lines say each channel's
  fixed columns once (``k`` lines), each read's list of channels once (``l`` lines), and per sensor read
  one line: the stamp as differences, then the values, an energy counter as the exact decimal difference
  from its previous value. The reader undoes all of it exactly: a value is the float it was written as.
- ``trace.csv``: the long CSV of earlier svbench versions (and of :class:`TraceWriter` given a ``.csv``
  path), read as it always was.

A trace cut short by a killed job still parses: a torn last line, or a zstd block cut in the middle, is
dropped, and a new session appending to a killed one first closes the torn zstd frame at its last whole
block (:func:`close_torn_frame`). The writer runs in the sidecar, beside the measured job, so it is kept
cheap: pandas is imported only by the reader, and a channel's fixed columns are formatted once.

``python -m svbench.energy.trace TRACE`` prints any trace as the long CSV (with its ``session`` column).
"""

from __future__ import annotations

import csv
import decimal
import io
import math
import sys
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

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_LEVEL = 1  # the smallest trace here as well as the cheapest (bench/trace_size.py: 3, 6 and 9 gave 3-8 % more)
# The lines inside the zstd stream. Every line ends with "," so a line cut by a kill (which a frame closed
# after the kill may follow with a newline) never passes for a whole one.
#   #svbench-trace,2,                       a writer's first line: forget every k/l line and previous value
#   k,<key>,sensor,channel,quantity,unit,component,estimated,     a channel's fixed columns (CSV-quoted)
#   l,<layout>,<n>,<key 1>,...,<key n>,     the channels of one sensor read, in order
#   <layout>,<d mono>,<d offset>,<value 1>,...,<value n>,        one sensor read
# d mono: t_mono_ns minus the previous read's; d offset: (t_wall_ns - t_mono_ns) minus the previous read's.
# A value is repr(float), "" for none (NaN); an energy counter's is the exact decimal difference from that
# channel's previous value (0 before the first), "=" + repr(float) where no difference is exact.
COMPACT_FORMAT = "#svbench-trace,2,"
_DECIMAL = decimal.Context(prec=800, traps=[decimal.Inexact, decimal.InvalidOperation])  # floats' exact span
_ZERO = decimal.Decimal(0)


def is_compact(path: Path) -> bool:
    """Whether a trace at ``path`` is (or will be written) in the compact zstd form: by its name."""
    return Path(path).name.endswith(".zst")


class TraceWriter:
    """Thread-safe appender, flushed to the OS at most ``flush_s`` after a row was written.

    Writes the compact zstd form where ``path`` ends in ``.zst`` (:func:`is_compact`), else the long CSV.
    ``flush_s=0`` flushes every write. The sidecar writes once per wake-up (every sensor read then due,
    in one ``write_batch()``) and flushes every 0.5 s: a SIGKILL loses at most the last half second of
    readings, under the one second DESIGN.md allows, for a fifth of the write calls at 10 Hz. In the
    compact form a flush ends a zstd block: what was flushed decodes whatever byte a kill stops at.
    """

    def __init__(self, path: Path, flush_s: float = 0.0) -> None:
        self.path = Path(path)
        self.compact = is_compact(self.path)
        self._lock = threading.Lock()
        self._fixed: dict[tuple, tuple[str, str] | int] = {}
        self.flush_s = flush_s
        self._flushed = time.monotonic()
        if self.compact:
            import zstandard  # here: a CSV-writing caller never loads it

            close_torn_frame(self.path)  # else this session's frame would follow a killed one's torn block
            self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
            self._zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False).compressobj()
            self._block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
            self._layouts: dict[tuple[int, ...], int] = {}
            self._previous: dict[int, decimal.Decimal] = {}
            self._mono = self._offset = 0
            # the leading newline ends a line a kill cut (its frame closed since): it stays a torn line
            self._emit(f"\n{COMPACT_FORMAT}\n", flush=True)
            return
        drop_torn_tail(self.path)  # else this session's first row would be glued to a killed one's last
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="", buffering=1 << 16)  # noqa: SIM115 - closed in close()
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
        if self.compact:
            with self._lock:  # the compact lines depend on the lines before them: encoded in file order
                if not self._file.closed:
                    self._emit(self._compact_lines(batch), flush)
            return
        parts = []
        fixed = self._fixed
        for sensor, readings, t_wall_ns, t_mono_ns in batch:
            stamp = f"{t_wall_ns},{t_mono_ns},"
            for r in readings:
                key = (sensor, r.channel, r.quantity, r.unit, r.component, r.estimated)
                cols = fixed.get(key)
                if cols is None:
                    cols = fixed[key] = _fixed_columns(*key)
                parts.append(f"{stamp}{cols[0]},{_value_text(r.value)},{cols[1]}\n")
        if not parts and not flush:
            return
        text = "".join(parts)
        with self._lock:
            if self._file.closed:
                return  # a sensor call that hung past the sidecar's stop: its late reading is dropped
            self._file.write(text)
            self._flush_if_due(flush, self._file.flush)

    def _compact_lines(self, batch: Iterable[tuple[str, Iterable[Reading], int, int]]) -> str:
        parts = []
        keys, layouts, previous = self._fixed, self._layouts, self._previous
        for sensor, readings, t_wall_ns, t_mono_ns in batch:
            ids, values = [], []
            for r in readings:
                key = (sensor, r.channel, r.quantity, r.unit, r.component, r.estimated)
                kid = keys.get(key)
                if kid is None:
                    kid = keys[key] = len(keys)
                    columns = _csv_line([sensor, r.channel, r.quantity, r.unit, r.component, int(r.estimated)])
                    parts.append(f"k,{kid},{columns},\n")
                ids.append(kid)
                text = _value_text(r.value)
                if text and r.quantity == "energy":
                    text = _difference(text, kid, previous)
                values.append(text)
            if not ids:
                continue
            layout = tuple(ids)
            lid = layouts.get(layout)
            if lid is None:
                lid = layouts[layout] = len(layouts)
                parts.append(f"l,{lid},{len(ids)},{','.join(map(str, ids))},\n")
            offset = t_wall_ns - t_mono_ns
            parts.append(f"{lid},{t_mono_ns - self._mono},{offset - self._offset},{','.join(values)},\n")
            self._mono, self._offset = t_mono_ns, offset
        return "".join(parts)

    def _emit(self, text: str, flush: bool) -> None:
        if text:
            self._file.write(self._zstd.compress(text.encode()))
        self._flush_if_due(flush, self._flush_block)

    def _flush_block(self) -> None:
        self._file.write(self._zstd.flush(self._block))
        self._file.flush()

    def _flush_if_due(self, flush: bool, do_flush) -> None:
        now = time.monotonic()
        if flush or now - self._flushed >= self.flush_s:
            do_flush()
            self._flushed = now

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                if self.compact:
                    self._file.write(self._zstd.flush())  # ends the frame
                self._file.flush()
                self._file.close()


def _value_text(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))


def _difference(text: str, kid: int, previous: dict[int, decimal.Decimal]) -> str:
    """A counter's value as the exact decimal difference from its previous one (``=value`` where none is)."""
    value = decimal.Decimal(text)
    if not value.is_finite():
        return "=" + text
    try:
        difference = _DECIMAL.subtract(value, previous.get(kid, _ZERO))
    except decimal.Inexact:  # a span no 800 digits hold: not from a float's repr, but never a wrong value
        return "=" + text
    previous[kid] = value
    return str(difference)


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


_CLOSE_BLOCK = b"\x01\x00\x00"  # a zstd block header: last block, raw, 0 bytes


def close_torn_frame(path: Path) -> None:
    """End a zstd trace whose writer was killed at its last whole block, so a new frame can follow.

    Walks the frames' block headers (no decompression): a frame that stops inside its header is cut off,
    one that stops inside or after a block without its last block is cut after its last whole block and
    closed with an empty last block. svbench's frames carry no checksum and no content size, so that frame is
    then whole (a frame with either is cut off whole).
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    size = path.stat().st_size
    with open(path, "rb+") as f:
        while f.tell() < size:
            start = f.tell()
            magic = f.read(4)
            if len(magic) < 4:
                return _truncate(f, start)
            if 0x184D2A50 <= int.from_bytes(magic, "little") <= 0x184D2A5F:  # a skippable frame
                length = f.read(4)
                if len(length) < 4 or start + 8 + int.from_bytes(length, "little") > size:
                    return _truncate(f, start)
                f.seek(int.from_bytes(length, "little"), io.SEEK_CUR)
                continue
            if magic != ZSTD_MAGIC:
                raise UserError(f"{path}: not a zstd stream at byte {start}: not an svbench trace")
            descriptor = f.read(1)
            if not descriptor:
                return _truncate(f, start)
            d = descriptor[0]
            single, checksum = d >> 5 & 1, d >> 2 & 1
            size_bytes = ((1 if single else 0), 2, 4, 8)[d >> 6]
            header = (0 if single else 1) + (0, 1, 2, 4)[d & 3] + size_bytes
            closable = not checksum and not size_bytes  # else the cut frame would claim what it lost
            if f.seek(header, io.SEEK_CUR) > size:
                return _truncate(f, start)
            while True:
                block = f.tell()
                head = f.read(3)
                if len(head) < 3:
                    return _close(f, block, start, closable)
                h = int.from_bytes(head, "little")
                kind = h >> 1 & 3
                if kind == 3:
                    raise UserError(f"{path}: a corrupt zstd block at byte {block}")
                if f.seek(1 if kind == 1 else h >> 3, io.SEEK_CUR) > size:
                    return _close(f, block, start, closable)
                if h & 1:
                    break
            if checksum and f.seek(4, io.SEEK_CUR) > size:
                return _truncate(f, start)  # not svbench's: its frames carry no checksum


def _truncate(f: io.BufferedRandom, at: int) -> None:
    f.truncate(at)


def _close(f: io.BufferedRandom, at: int, frame: int, closable: bool) -> None:
    if not closable:  # a checksum or content size of the whole frame: not svbench's streaming frames
        f.truncate(frame)
        return
    f.truncate(at)
    f.seek(at)
    f.write(_CLOSE_BLOCK)


CHUNK_ROWS = 400_000  # rows parsed at a time: bounds the join's memory whatever the trace's length
_DTYPES = {"sensor": str, "channel": str, "quantity": str, "unit": str, "component": str}


def iter_trace(path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The trace in file order, ``chunk_rows`` rows at a time, cleaned as :func:`read_trace` cleans it, with
    a ``session`` column: the id of the sidecar session a row belongs to ("" before any session row, as in
    traces of svbench versions that wrote none). The rows of one sidecar read (one time stamp) never
    straddle two chunks. A torn last line or a torn row (a kill mid-write) is dropped. Either form (the
    compact zstd one or the long CSV) is told by its first bytes, whatever the file's name.
    """
    import pandas as pd  # here, not at the top: the sidecar imports this module and never reads a trace

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb") as f:
        head = f.read(4)
    # a .zst cut inside its first bytes is a compact trace with nothing in it yet
    compact = head == ZSTD_MAGIC or (is_compact(path) and ZSTD_MAGIC.startswith(head))
    frames = _compact_frames(path, chunk_rows) if compact else _csv_frames(path, chunk_rows)
    session = ""
    held: pd.DataFrame | None = None
    for frame in frames:
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


def _csv_frames(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pandas as pd

    reader = pd.read_csv(path, dtype=_DTYPES, keep_default_na=False, na_values={"value": [""]},
                         on_bad_lines="skip", chunksize=chunk_rows)
    for raw in reader:
        missing = [c for c in COLUMNS if c not in raw.columns]
        if missing:
            raise UserError(f"{path}: not an svbench trace (missing columns {missing})")
        yield _clean(raw)


def _compact_frames(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Decode the compact form, a chunk of about ``chunk_rows`` rows at a time, streaming the zstd frames.

    Only whole lines count (they end with ","): a line or block cut by a kill is dropped, and the zstd
    decoder stops at a cut block without an error."""
    import numpy as np
    import pandas as pd
    import zstandard

    keys: list[tuple] = []  # every k line's columns; a writer's key ids map into this list
    local: dict[int, int] = {}
    layouts: dict[int, list[int]] = {}
    counter: list[bool] = []  # by key: an energy counter, written as differences
    previous: dict[int, decimal.Decimal] = {}
    mono = offset = 0
    walls: list[int] = []
    monos: list[int] = []
    kids: list[int] = []
    values: list[float] = []

    def frame() -> pd.DataFrame:
        fixed = np.empty((len(keys), 6), dtype=object)
        for i, key in enumerate(keys):
            fixed[i] = key
        at = np.asarray(kids, dtype=np.int64)
        cols = fixed[at] if len(at) else np.empty((0, 6), dtype=object)
        out = pd.DataFrame({
            "t_wall_ns": np.asarray(walls, dtype=np.int64), "t_mono_ns": np.asarray(monos, dtype=np.int64),
            "sensor": cols[:, 0], "channel": cols[:, 1], "quantity": cols[:, 2],
            "value": np.asarray(values, dtype=np.float64), "unit": cols[:, 3], "component": cols[:, 4],
            "estimated": cols[:, 5].astype(bool)})
        for c in ("sensor", "channel", "quantity", "unit", "component"):
            out[c] = out[c].astype(str)
        walls.clear(), monos.clear(), kids.clear(), values.clear()
        return out

    rest = b""
    with open(path, "rb") as raw:
        stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        while True:
            try:
                data = stream.read(1 << 20)
            except zstandard.ZstdError as exc:
                raise UserError(f"{path}: a corrupt zstd stream ({exc})") from None
            if not data:
                break
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            for line in data[:cut].decode("utf-8", errors="replace").split("\n"):
                if not line or line[-1] != ",":
                    continue  # an empty line, or one cut by a kill
                first = line[0]
                if "0" <= first <= "9":
                    parts = line.split(",")
                    layout = layouts.get(int(parts[0])) if parts[0].isdigit() else None
                    if layout is None or len(parts) != len(layout) + 4:
                        continue  # cut by a kill (its frame closed by the next session), or its l line was
                    try:
                        mono += int(parts[1])
                        offset += int(parts[2])
                    except ValueError:
                        continue
                    for kid, text in zip(layout, parts[3:-1], strict=True):
                        if not text:
                            value = math.nan
                        elif text[0] == "=":
                            value = float(text[1:])
                        elif counter[kid]:
                            total = _DECIMAL.add(previous.get(kid, _ZERO), decimal.Decimal(text))
                            previous[kid] = total
                            value = float(total)
                        else:
                            value = float(text)
                        walls.append(mono + offset)
                        monos.append(mono)
                        kids.append(kid)
                        values.append(value)
                elif first == "k":
                    fields = next(csv.reader([line]))
                    if len(fields) != 9 or fields[7] not in ("0", "1"):
                        continue
                    local[int(fields[1])] = len(keys)
                    keys.append((*fields[2:7], fields[7] == "1"))
                    counter.append(fields[4] == "energy")
                elif first == "l":
                    parts = line.split(",")
                    if len(parts) < 4 or len(parts) != int(parts[2]) + 4:
                        continue
                    layouts[int(parts[1])] = [local[int(k)] for k in parts[3:-1]]
                elif line.startswith("#svbench-trace,"):
                    if line != COMPACT_FORMAT:
                        raise UserError(f"{path}: a trace of another svbench version ({line!r}); this one reads "
                                        f"{COMPACT_FORMAT!r}")
                    local, layouts, previous, mono, offset = {}, {}, {}, 0, 0
                else:
                    raise UserError(f"{path}: not an svbench trace (a line {line[:40]!r})")
            if len(values) >= chunk_rows:
                yield frame()
    if values:
        yield frame()


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


def main(argv: list[str] | None = None) -> int:
    """``python -m svbench.energy.trace TRACE``: the trace as the long CSV (with ``session``) on stdout."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m svbench.energy.trace TRACE  (trace.csv.zst or trace.csv)", file=sys.stderr)
        return 2
    header = True
    for chunk in iter_trace(Path(args[0])):
        chunk.assign(estimated=chunk["estimated"].astype(int)).to_csv(sys.stdout, header=header, index=False)
        header = False
    return 0


if __name__ == "__main__":
    sys.exit(main())
