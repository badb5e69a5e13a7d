"""Utterance manifests (TSV) and VoxCeleb-format trial lists.

Utterance ids are paths relative to the wav root, as in VoxCeleb: `id10270/x6uYqmx31kE/00001.wav`.

Manifest: a header `utt<TAB>speaker<TAB>path<TAB>seconds`, then one utterance per line. A relative
`path` is relative to the folder holding the manifest (so a corpus folder can be moved as a whole);
`read_manifest` returns it joined to that folder.

Trial list: `label enroll test` per line, label 1 = same speaker, no header.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_field(path: Path, value: str, what: str) -> None:
    # Tabs, newlines or spaces inside a field would break the TSV or the space-separated trial list.
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{path}: {what} {value!r} is empty or contains whitespace")


def write_manifest(path: str | os.PathLike, utts: Iterable[Utterance]) -> None:
    """Write utterances as a TSV manifest, atomically. Paths are written as given."""
    path = Path(path)
    lines = ["\t".join(MANIFEST_HEADER)]
    for u in utts:
        for value, what in ((u.utt, "utterance id"), (u.speaker, "speaker"), (str(u.path), "path")):
            _check_field(path, value, what)
        lines.append(f"{u.utt}\t{u.speaker}\t{u.path}\t{float(u.seconds)!r}")
    _write_text_atomic(path, "\n".join(lines) + "\n")


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a TSV manifest; errors name the file and the 1-based line number."""
    path = Path(path)
    root = path.parent
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or tuple(lines[0].split("\t")) != MANIFEST_HEADER:
        found = lines[0] if lines else "an empty file"
        raise ValueError(f"{path}:1: expected header {' '.join(MANIFEST_HEADER)!r} (tab-separated), got {found!r}")
    utts: list[Utterance] = []
    seen: set[str] = set()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4 or not all(fields):
            raise ValueError(f"{path}:{lineno}: expected 4 non-empty tab-separated fields, got {line!r}")
        utt, speaker, wav, seconds_text = fields
        try:
            seconds = float(seconds_text)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"{path}:{lineno}: seconds {seconds_text!r} is not a non-negative number")
        if utt in seen:
            raise ValueError(f"{path}:{lineno}: duplicate utterance {utt!r}")
        seen.add(utt)
        wav_path = Path(wav)
        utts.append(Utterance(utt, speaker, wav_path if wav_path.is_absolute() else root / wav_path, seconds))
    return utts


def write_trials(path: str | os.PathLike, trials: Iterable[Trial]) -> None:
    """Write a VoxCeleb-format trial list (`label enroll test`), atomically."""
    path = Path(path)
    lines = []
    for t in trials:
        if t.label not in (0, 1):
            raise ValueError(f"{path}: trial label {t.label!r} is not 0 or 1")
        _check_field(path, t.enroll, "enroll utterance")
        _check_field(path, t.test, "test utterance")
        lines.append(f"{int(t.label)} {t.enroll} {t.test}\n")
    _write_text_atomic(path, "".join(lines))


def read_trials(path: str | os.PathLike, known_utts: set[str] | None = None,
                why_unknown: dict[str, str] | None = None) -> list[Trial]:
    """Read a VoxCeleb-format trial list.

    Raises ValueError naming the file, the 1-based line number and the bad item: a label other
    than 0/1, a line without exactly three fields, or (when `known_utts` is given) an utterance
    that is not in it, with the reason from `why_unknown` when it has one. Blank lines are skipped.
    """
    path = Path(path)
    trials: list[Trial] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise ValueError(
                    f"{path}:{lineno}: expected 3 fields 'label enroll test', got {len(fields)}: {line.rstrip()!r}"
                )
            label, enroll, test = fields
            if label not in ("0", "1"):
                raise ValueError(f"{path}:{lineno}: label {label!r} is not 0 or 1")
            if known_utts is not None:
                for utt in (enroll, test):
                    if utt not in known_utts:
                        why = f" ({why_unknown[utt]})" if why_unknown and utt in why_unknown else ""
                        raise ValueError(f"{path}:{lineno}: unknown utterance {utt!r}{why}")
            trials.append(Trial(int(label), enroll, test))
    return trials
