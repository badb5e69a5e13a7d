"""Writing a result file so that a reader never sees half of it: a temporary file beside it, then a rename.

A job killed at any line leaves either the old file or the new one, never a truncated one, and no stray
temporary file when Python itself saw the failure. The temporary name is hidden and unique (``.name.XXXX.tmp``)
so that two writers, or a glob over the folder, never mistake it for a result.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def create_temp(path: Path, private: bool = False) -> tuple[int, Path]:
    """A new temporary file beside ``path`` (same folder, so ``os.replace`` onto ``path`` is atomic), open for writing.

    Created 0666 so that the umask applies as to any other new file (``tempfile.mkstemp`` makes 0600); ``private``:
    0600, readable by its owner alone from the first byte.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666), tmp


@contextmanager
def atomic_write(path: Path | str, mode: str = "w", *, durable: bool = False,
                 previous: Path | None = None, private: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file for ``path``; when the block ends without error it replaces ``path``.

    ``mode`` is "w" (UTF-8 text, ``\\n`` line ends) or "wb". ``durable`` fsyncs before the rename, for files a
    node crash must not truncate (checkpoints). With ``previous``, the former ``path`` is moved there first.
    ``private``: the file is its owner's alone (0600).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    fd, tmp = create_temp(path, private)
    try:
        with (os.fdopen(fd, mode, encoding="utf-8", newline="\n") if mode == "w" else os.fdopen(fd, mode)) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    with atomic_write(path) as f:
        f.write(text)


def write_texts_atomic(texts: Mapping[Path, str]) -> None:
    """Write several UTF-8 text files as one output: each to a temporary name beside it, then all renamed.

    A failure while writing (or a KeyboardInterrupt) leaves every target as it was and no temporary file;
    only a failing rename, in the same folder, could leave some files new and some old.
    """
    temps: list[tuple[Path, Path]] = []
    try:
        for path, text in texts.items():
            fd, tmp = create_temp(path)
            temps.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise


def file_sha256(path: Path | str) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json_object(path: Path | str, what: str) -> dict:
    """A JSON file holding an object (``what`` names it in errors); UserError naming the file, and the line and
    column of a syntax error, for a file that is missing, empty, truncated, not JSON or not an object."""
    import json

    from svbench.errors import UserError

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no {what} (was its step run?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the {what} ({getattr(exc, 'strerror', None) or exc})") from None
    if not text.strip():
        raise UserError(f"{path}: the {what} is empty")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}:{exc.colno}: the {what} is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: the {what} must be a JSON object, got {type(value).__name__}")
    return value


def read_table(path: Path | str, what: str, columns: tuple[str, ...] = (), **read_csv: Any) -> Any:
    """A CSV table (pandas) with at least ``columns``; UserError naming the file (and the missing column) when it
    is missing, empty, not CSV, or lacks a column. A header-only table is returned empty: the caller decides."""
    import pandas as pd

    from svbench.errors import UserError

    path = Path(path)
    try:
        frame = pd.read_csv(path, **read_csv)
    except FileNotFoundError:
        raise UserError(f"{path}: no {what} (was its step run?)") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the {what} is empty (not even a header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: the {what} is not a readable CSV table ({str(exc).splitlines()[0]})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        raise UserError(f"{path}: the {what} has no column {missing[0]!r} (columns: {found})")
    return frame


def read_yaml_mapping(path: Path | str, what: str) -> dict:
    """A YAML file holding a mapping (``what`` names it in errors), read as Snakemake reads a config (JSON is YAML);
    UserError naming the file, and ``FILE:LINE:COL`` of a syntax error (yaml names the string it parsed, not the
    file). An empty file is the empty mapping."""
    import yaml

    from svbench.errors import UserError

    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:  # missing, a directory, unreadable, not text
        raise UserError(f"{path}: cannot read the {what}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a mapping of {what} keys, got {type(value).__name__}")
    return value
