"""The sensor trace: every reading the sidecar takes, appended and flushed while the job runs.

Every reading is a row ``t_wall_ns t_mono_ns sensor channel quantity value unit component estimated``.
Wall-clock time places a reading in the calendar (grid carbon intensity); monotonic time places it
against the job's phase markers on the same host without NTP steps.

Two forms on disk, one reader (:func:`iter_trace` tells them by their first bytes):

- ``trace.csv.zst`` (:data:`svbench.instrument.nodes.TRACE`, what the sidecar writes): a zstd stream of compact
  text lines (:data:`COMPACT_FORMAT`), flushed as a zstd *block* at every trace flush, so the compression
  window survives a flush and a SIGKILL loses only what was not flushed yet. The lines say each channel's
  fixed columns once (``k`` lines), each read's list of channels once (``l`` lines), and per sensor read
  one line: the stamp as differences, then the values as ``repr(float)``. The reader undoes it exactly: a
  value is the float it was written as, parsed by pandas' C reader a run of read lines at a time.
- ``trace.csv``: the long CSV of earlier svbench versions (and of :class:`TraceWriter` given a ``.csv``
  path), read as it always was.

A trace cut short by a killed job still parses: a torn last line, or a zstd block cut in the middle, is
dropped, and a new session appending to a killed one first closes the torn zstd frame at its last whole
block (:func:`close_torn_frame`). The writer runs in the sidecar, beside the measured job, so it is kept
cheap: pandas is imported only by the reader, and a channel's fixed columns are formatted once.

``python -m svbench.instrument.trace TRACE`` prints any trace as the long CSV (with its ``session`` column).
"""

from __future__ import annotations

import csv
import io
import math
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from svbench.errors import UserError
from svbench.instrument.sensors.base import Reading

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
#   #svbench-trace,3,                       a writer's first line: forget every k/l line and previous stamp
#   k,<key>,sensor,channel,quantity,unit,component,estimated,     a channel's fixed columns (CSV-quoted)
#   l,<layout>,<n>,<key 1>,...,<key n>,     the channels of one sensor read, in order
#   <layout>,<d mono>,<d offset>,<value 1>,...,<value n>,        one sensor read
# d mono: t_mono_ns minus the previous read's; d offset: (t_wall_ns - t_mono_ns) minus the previous read's.
# A value is repr(float), "" for none (NaN). Counters are written whole, not as differences: exact differences
# of decimal texts made the 12-h benchmark trace 0.43 MB per GPU-hour instead of 0.53, but needed a Python loop
# of Decimal sums to read (the join 23 % slower than the CSV's); whole values are one C parse.
# Version 2 (svbench 694094d only) wrote counters as differences: refused by name, not misread.
COMPACT_FORMAT = "#svbench-trace,3,"


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
        keys, layouts = self._fixed, self._layouts
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
                values.append(_value_text(r.value))
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
    frames = _compact_frames(path, chunk_rows) if _compact_form(path) else _csv_frames(path, chunk_rows)
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


def _compact_form(path: Path) -> bool:
    """Whether a (non-empty) trace is the compact form, by its first bytes; a .zst cut inside them is a compact
    trace with nothing in it yet."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == ZSTD_MAGIC or (is_compact(path) and ZSTD_MAGIC.startswith(head))


def _compact_frames(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Decode the compact form, a chunk of about ``chunk_rows`` rows at a time, streaming the zstd frames.

    Only whole lines count (they end with ","): a line or block cut by a kill is dropped, and the zstd
    decoder stops at a cut block without an error. The read lines between two k/l/# lines are decoded
    together (:class:`_CompactDecoder`): one C parse (pandas' ``read_csv``) of their stamps and values."""
    decoder = _CompactDecoder(path)
    for lines in _compact_lines(path):
        decoder.lines(lines)
        if decoder.rows >= chunk_rows:
            yield decoder.frame()
    if decoder.rows:
        yield decoder.frame()


def _compact_lines(path: Path) -> Iterator[list[str]]:
    """The whole lines of a compact trace, about a MiB of text at a time."""
    import zstandard

    rest = b""
    with open(path, "rb") as raw:
        stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        while True:
            try:
                data = stream.read(1 << 20)
            except zstandard.ZstdError as exc:
                raise UserError(f"{path}: a corrupt zstd stream ({exc})") from None
            if not data:
                return
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            yield data[:cut].decode("utf-8", errors="replace").split("\n")


def wall_range(path: Path) -> tuple[int, int] | None:
    """First and last wall-clock time of a trace of either form, streamed (the timelines' span): a compact
    trace's stamps alone are decoded, a CSV's one column read."""
    import pandas as pd

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    if _compact_form(path):
        decoder = _CompactDecoder(path, stamps_only=True)
        for lines in _compact_lines(path):
            decoder.lines(lines)
        return decoder.span if decoder.span and decoder.span[1] > decoder.span[0] else None
    lo = hi = None
    for chunk in pd.read_csv(path, usecols=["t_wall_ns"], chunksize=1_000_000, on_bad_lines="skip"):
        t = pd.to_numeric(chunk["t_wall_ns"], errors="coerce").dropna()
        if len(t):
            lo = int(t.min()) if lo is None else min(lo, int(t.min()))
            hi = int(t.max()) if hi is None else max(hi, int(t.max()))
    return None if lo is None or hi is None or hi <= lo else (lo, hi)


class _CompactDecoder:
    """The state of a compact trace's reader: the channels (k lines), read layouts (l lines) and the last
    stamps; and the decoded rows not yet handed out."""

    def __init__(self, path: Path, stamps_only: bool = False) -> None:
        self.path = path
        self.stamps_only = stamps_only  # wall_range: the stamps' span, no values (lo, hi in self.span)
        self.span: tuple[int, int] | None = None
        self.keys: list[tuple] = []  # every k line's columns; a writer's key ids map into this list
        self.local: dict[int, int] = {}
        self.layouts: dict[str, list[int]] = {}  # by the layout id as written
        self.mono = self.offset = 0
        self.parts: list[tuple] = []  # (walls, monos, kids, values) arrays of decoded runs of read lines
        self.rows = 0
        # A line that did not parse. A kill tears only a session's last line (the next session's header follows,
        # or the end of the file); anything else after it is damage, which stamps stored as differences would
        # otherwise carry into every later row.
        self.torn: str | None = None

    def lines(self, lines: list[str]) -> None:
        reads: list[str] = []
        for line in lines:
            if not line:
                continue
            if self.torn is not None and not line.startswith("#svbench-trace,"):
                raise UserError(f"{self.path}: a damaged line {self.torn[:40]!r} inside a session (a kill cuts only "
                                "a session's last line): the trace cannot be read past it")
            first = line[0]
            if line[-1] != ",":
                self.torn = line  # cut by a kill, if nothing but a new session follows
            elif "0" <= first <= "9":
                lid, _, rest = line.partition(",")
                layout = self.layouts.get(lid)
                if layout is not None and rest.count(",") == len(layout) + 2:
                    reads.append(line)
                else:
                    self.torn = line
            else:
                self._reads(reads)  # the reads before a control line are decoded with the state they were written in
                reads = []
                self._control(line, first)
        self._reads(reads)

    def _control(self, line: str, first: str) -> None:
        if first == "k":
            fields = next(csv.reader([line]))
            if len(fields) != 9 or fields[7] not in ("0", "1") or not fields[1].isdigit():
                self.torn = line
                return
            self.local[int(fields[1])] = len(self.keys)
            self.keys.append((*fields[2:7], fields[7] == "1"))
        elif first == "l":
            parts = line.split(",")
            if (len(parts) < 4 or not parts[2].isdigit() or len(parts) != int(parts[2]) + 4
                    or not all(k.isdigit() and int(k) in self.local for k in parts[3:-1])):
                self.torn = line
                return
            self.layouts[parts[1]] = [self.local[int(k)] for k in parts[3:-1]]
        elif line.startswith("#svbench-trace,"):
            if line != COMPACT_FORMAT:
                raise UserError(f"{self.path}: a trace of another svbench version ({line!r}); this one reads "
                                f"{COMPACT_FORMAT!r}")
            self.local, self.layouts, self.mono, self.offset, self.torn = {}, {}, 0, 0, None
        else:
            raise UserError(f"{self.path}: not an svbench trace (a line {line[:40]!r})")

    def _reads(self, reads: list[str]) -> None:
        """Decode consecutive read lines with one C parse: stamps by cumulative sums, values row by row."""
        import numpy as np
        import pandas as pd

        if not reads:
            return
        ids = [line[:line.index(",")] for line in reads]
        widths = np.array([len(self.layouts[i]) for i in ids], dtype=np.int64)
        width = int(widths.max())
        columns = range(1, 3) if self.stamps_only else range(1, width + 3)
        try:
            table = pd.read_csv(io.StringIO("\n".join(reads)), header=None, names=range(width + 4),
                                dtype={1: np.int64, 2: np.int64} | {c: np.float64 for c in range(3, width + 4)},
                                usecols=columns, keep_default_na=False, na_values=[""])
        except ValueError:  # a stamp or value that is not a number: damage, not a kill; say so, never misread
            raise UserError(f"{self.path}: a damaged read line in the compact trace") from None
        monos = self.mono + np.cumsum(table[1].to_numpy())
        walls = monos + self.offset + np.cumsum(table[2].to_numpy())
        self.mono, self.offset = int(monos[-1]), int(walls[-1] - monos[-1])
        if self.stamps_only:
            lo, hi = int(walls.min()), int(walls.max())
            self.span = (lo, hi) if self.span is None else (min(self.span[0], lo), max(self.span[1], hi))
            return
        cells = table.iloc[:, 2:].to_numpy()
        keep = np.arange(width)[None, :] < widths[:, None]  # a row's own values, in its layout's order
        kids = np.full((len(reads), width), -1, dtype=np.int64)
        for i, lid in enumerate(ids):
            kids[i, : widths[i]] = self.layouts[lid]
        line_of = np.repeat(np.arange(len(reads)), widths)
        self.parts.append((walls[line_of], monos[line_of], kids[keep], cells[keep]))
        self.rows += int(widths.sum())

    def frame(self) -> pd.DataFrame:
        """The rows decoded so far as one frame (the trace's columns), and forget them."""
        import numpy as np
        import pandas as pd

        walls, monos, kids, values = (np.concatenate(c) for c in zip(*self.parts, strict=True))
        self.parts, self.rows = [], 0
        fixed = np.empty((len(self.keys), 6), dtype=object)
        for i, key in enumerate(self.keys):
            fixed[i] = key
        names = ("sensor", "channel", "quantity", "unit", "component", "estimated")
        columns = {name: fixed[kids, i] for i, name in enumerate(names)}
        out = pd.DataFrame({"t_wall_ns": walls, "t_mono_ns": monos, "sensor": columns["sensor"],
                            "channel": columns["channel"], "quantity": columns["quantity"], "value": values,
                            "unit": columns["unit"], "component": columns["component"],
                            "estimated": columns["estimated"].astype(bool)})
        for c in ("sensor", "channel", "quantity", "unit", "component"):
            out[c] = out[c].astype(str)
        return out


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
    """``python -m svbench.instrument.trace TRACE``: the trace as the long CSV (with ``session``) on stdout."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m svbench.instrument.trace TRACE  (trace.csv.zst or trace.csv)", file=sys.stderr)
        return 2
    header = True
    for chunk in iter_trace(Path(args[0])):
        chunk.assign(estimated=chunk["estimated"].astype(int)).to_csv(sys.stdout, header=header, index=False)
        header = False
    return 0


if __name__ == "__main__":
    sys.exit(main())
