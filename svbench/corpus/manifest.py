"""Utterance manifests (TSV) and VoxCeleb-format trial lists.

Utterance ids are paths relative to the wav root, as in VoxCeleb: `id10270/x6uYqmx31kE/00001.wav`.

Manifest: a header `utt<TAB>speaker<TAB>path<TAB>seconds`, then one utterance per line. A relative
`path` is relative to the folder holding the manifest (so a corpus folder can be moved as a whole);
`read_manifest` returns it joined to that folder.

Any name works in a manifest (spaces, non-ASCII) except one with a tab or line break, the TSV's separators,
or with bytes that are not UTF-8.
Trial list: `label enroll test` per line, label 1 = same speaker, no header (so ids hold no whitespace).
Errors are UserError naming the file (and 1-based line).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from svbench.errors import UserError
from svbench.fileio import write_texts_atomic

MANIFEST_HEADER = ("utt", "speaker", "path", "seconds")


@dataclass(frozen=True)
class Utterance:
    utt: str
    speaker: str
    path: Path
    seconds: float


@dataclass(frozen=True)
class Trial:
    label: int
    enroll: str
    test: str


def unstorable(name: str) -> str | None:
    """Why `name` cannot be a field of a UTF-8 TSV line, or None when it can."""
    # any line break, not only \n: readers that use str.splitlines (feature index, listing) break on \r, \x85...
    if "\t" in name or "".join(name.splitlines()) != name:
        return "a tab or line break"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a file name with bytes that are not UTF-8 (os gives them as surrogates)
        return "bytes that are not UTF-8"
    return None


def check_tsv_field(path: Path, value: str, what: str) -> None:
    """Refuse a field that the TSV file `path` cannot hold, naming it."""
    if not value:
        raise UserError(f"{path}: empty {what}")
    why = unstorable(value)
    if why:
        raise UserError(f"{path}: {what} {value!r} holds {why}, which a TSV file cannot store: rename the file")


def _check_trial_field(path: Path, value: str, what: str) -> None:
    # Fields of a trial list are separated by whitespace, so an id cannot hold any.
    if not value or any(c.isspace() for c in value):
        raise UserError(f"{path}: {what} {value!r} is empty or contains whitespace")


def manifest_text(path: Path, utts: Iterable[Utterance]) -> str:
    """The text of the manifest `path` (named in errors). Paths are written as given."""
    lines = ["\t".join(MANIFEST_HEADER)]
    for u in utts:
        # the path first: when a name cannot be stored, the error names the file to rename
        for value, what in ((str(u.path), "path"), (u.utt, "utterance id"), (u.speaker, "speaker")):
            check_tsv_field(path, value, what)
        lines.append(f"{u.utt}\t{u.speaker}\t{u.path}\t{float(u.seconds)!r}")
    return "\n".join(lines) + "\n"


def write_manifest(path: str | os.PathLike, utts: Iterable[Utterance]) -> None:
    """Write utterances as a TSV manifest, atomically. Paths are written as given."""
    path = Path(path)
    write_texts_atomic({path: manifest_text(path, utts)})


def _read_lines(path: Path, what: str) -> list[str]:
    """The lines of a UTF-8 text file; a line that is not UTF-8 is an error naming it."""
    try:
        data = path.read_bytes()
    except OSError as e:  # a directory, a missing or unreadable file: one line naming it
        raise UserError(f"{path}: cannot read the {what} ({e.strerror or e})") from e
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    text = []
    for lineno, raw in enumerate(lines, start=1):
        try:
            text.append(raw.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as e:
            where = f"byte {raw[e.start]:#04x} at column {e.start + 1}"
            raise UserError(f"{path}:{lineno}: not UTF-8 text ({where}): save it as UTF-8") from None
    return text


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a TSV manifest; errors name the file and the 1-based line number."""
    path = Path(path)
    root = path.parent
    lines = _read_lines(path, "manifest")
    if not lines or tuple(lines[0].split("\t")) != MANIFEST_HEADER:
        found = lines[0] if lines else "an empty file"
        raise UserError(f"{path}:1: expected header {' '.join(MANIFEST_HEADER)!r} (tab-separated), got {found!r}")
    utts: list[Utterance] = []
    seen: set[str] = set()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4 or not all(fields):
            raise UserError(f"{path}:{lineno}: expected 4 non-empty tab-separated fields, got {line!r}")
        utt, speaker, wav, seconds_text = fields
        try:
            seconds = float(seconds_text)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds >= 0):
            raise UserError(f"{path}:{lineno}: seconds {seconds_text!r} is not a non-negative number")
        if utt in seen:
            raise UserError(f"{path}:{lineno}: duplicate utterance {utt!r}")
        seen.add(utt)
        wav_path = Path(wav)
        utts.append(Utterance(utt, speaker, wav_path if wav_path.is_absolute() else root / wav_path, seconds))
    return utts


def trials_text(path: Path, trials: Iterable[Trial]) -> str:
    """The text of the trial list `path` (named in errors): `label enroll test` per line."""
    lines = []
    for t in trials:
        if t.label not in (0, 1):
            raise UserError(f"{path}: trial label {t.label!r} is not 0 or 1")
        _check_trial_field(path, t.enroll, "enroll utterance")
        _check_trial_field(path, t.test, "test utterance")
        lines.append(f"{int(t.label)} {t.enroll} {t.test}\n")
    return "".join(lines)


def write_trials(path: str | os.PathLike, trials: Iterable[Trial]) -> None:
    """Write a VoxCeleb-format trial list (`label enroll test`), atomically."""
    path = Path(path)
    write_texts_atomic({path: trials_text(path, trials)})


def read_trials(path: str | os.PathLike, known_utts: set[str] | None = None,
                why_unknown: dict[str, str] | None = None) -> list[Trial]:
    """Read a VoxCeleb-format trial list.

    Raises UserError naming the file, the 1-based line number and the bad item: a file that cannot be
    read or is not UTF-8, a label other than 0/1, a line without exactly three fields, (when `known_utts`
    is given) an utterance that is not in it, with the reason from `why_unknown` when it has one, or a
    list without any trial. Blank lines are skipped.
    """
    path = Path(path)
    trials: list[Trial] = []
    for lineno, line in enumerate(_read_lines(path, "trial list"), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise UserError(f"{path}:{lineno}: expected 3 fields 'label enroll test', got {len(fields)}: {line!r}")
        label, enroll, test = fields
        if label not in ("0", "1"):
            raise UserError(f"{path}:{lineno}: label {label!r} is not 0 or 1")
        if known_utts is not None:
            for utt in (enroll, test):
                if utt not in known_utts:
                    why = f" ({why_unknown[utt]})" if why_unknown and utt in why_unknown else ""
                    raise UserError(f"{path}:{lineno}: unknown utterance {utt!r}{why}")
        trials.append(Trial(int(label), enroll, test))
    if not trials:  # scoring would fail only after all the training, naming no list
        raise UserError(f"{path}: no trials (an empty trial list)")
    return trials
