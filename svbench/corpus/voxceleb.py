"""VoxCeleb from disk: VoxCeleb2-dev for training, VoxCeleb1 for the O/E/H trial lists.

Trees are `ROOT/idXXXXX/<video>/NNNNN.{wav,m4a}`; an utterance id is the path below the root with a
`.wav` suffix (`id10270/x6uYqmx31kE/00001.wav`), the speaker its first part. VoxCeleb2-dev may be m4a
(converted by `svbench.corpus.convert` into `converted_root`) or already wav.

`build_voxceleb` writes `train.tsv` (all of VoxCeleb2-dev), `test.tsv` (the VoxCeleb1 utterances of
the trial lists, or all of VoxCeleb1 when a Vox1-E/H list is configured), `trials/{name}.txt` and
`bad_audio.tsv`. Every file's header and size are checked first; nothing is written unless all
checks pass, and the outputs are written as one (temporary names, renamed at the end), so a failed run
leaves no manifest behind, or an earlier run's outputs as they were.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from svbench.corpus.audio import AudioError, check_wav
from svbench.corpus.convert import read_failures, read_list, wav_path_for
from svbench.corpus.manifest import (
    Trial,
    Utterance,
    check_tsv_field,
    manifest_text,
    read_trials,
    trials_text,
    unstorable,
)
from svbench.errors import UserError
from svbench.fileio import write_texts_atomic

log = logging.getLogger("svbench.voxceleb")

WHOLE_VOX1_LISTS = ("vox1_e", "vox1_h")  # trial lists over all of VoxCeleb1: no Vox1 speaker may be trained on
BAD_AUDIO_HEADER = "split\tutt\tpath\treason\n"


@dataclass(frozen=True)
class BadAudio:
    split: str
    utt: str
    path: Path
    reason: str


def list_audio(root: str | os.PathLike, suffixes: tuple[str, ...] = (".wav", ".m4a")) -> list[str]:
    """Sorted `speaker/video/file` paths below `root` whose name ends in one of `suffixes`."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: corpus folder not found")
    found = []
    for speaker in os.scandir(root):
        if not speaker.is_dir() or speaker.name.startswith("."):
            continue
        for video in os.scandir(speaker.path):
            if not video.is_dir() or video.name.startswith("."):
                continue
            found += [f"{speaker.name}/{video.name}/{f.name}" for f in os.scandir(video.path)
                      if f.name.endswith(suffixes) and not f.name.startswith(".")]
    return sorted(found)


def list_vox2(root: str | os.PathLike, out: str | os.PathLike) -> dict[str, int | str]:
    """Write the sorted listing of a VoxCeleb2-dev tree: its m4a files if it has any, else its wav files."""
    files = list_audio(root)
    m4a = [f for f in files if f.endswith(".m4a")]
    chosen = m4a or files
    if not chosen:
        raise UserError(f"{root}: no .m4a or .wav files in the expected layout idXXXXX/<video>/NNNNN.ext")
    odd = [f for f in chosen if unstorable(f)]
    if odd:  # the listing has a name per line and manifests are TSV: refuse now, not after converting
        more = f" (and {len(odd) - 1} more)" if len(odd) > 1 else ""
        raise UserError(f"{root}: file name {str(Path(root) / odd[0])!r}{more} holds {unstorable(odd[0])}, which "
                        "the listing and the manifests cannot store: rename it")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_texts_atomic({out: "".join(f"{f}\n" for f in chosen)})
    return {"files": len(chosen), "format": "m4a" if m4a else "wav"}


def _check_all(entries: list[tuple[str, str, Path]], workers: int) -> tuple[dict[str, list[Utterance]], list[BadAudio]]:
    """Header and size checks of (split, utt, path) entries, in parallel (network file systems are slow)."""
    def one(entry: tuple[str, str, Path]) -> float | str:
        try:
            return check_wav(entry[2])
        except AudioError as exc:
            return str(exc)

    good: dict[str, list[Utterance]] = {"train": [], "test": []}
    bad: list[BadAudio] = []
    t0 = last = time.monotonic()

    def results():  # in blocks: one future per file for a million files at once would hold too much memory
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for start in range(0, len(entries), 10_000):
                yield from pool.map(one, entries[start: start + 10_000])

    for n, ((split, utt, path), result) in enumerate(zip(entries, results(), strict=True), start=1):
        if isinstance(result, str):
            bad.append(BadAudio(split, utt, path, result))
        else:
            good[split].append(Utterance(utt, utt.split("/")[0], path, result))
        if time.monotonic() - last >= 30.0:
            last = time.monotonic()
            log.info("checked %d/%d files (%.0f files/s)", n, len(entries), n / (last - t0))
    return good, bad


def _bad_audio_text(path: Path, bad: list[BadAudio]) -> str:
    """The text of `bad_audio.tsv` (split, utt, path, reason); a reason is made one TSV field."""
    rows = []
    for b in bad:
        check_tsv_field(path, str(b.path), "path")
        reason = " ".join(b.reason.replace("\t", " ").splitlines())
        rows.append(f"{b.split}\t{b.utt}\t{b.path}\t{reason}\n")
    return BAD_AUDIO_HEADER + "".join(rows)


def _training_entries(vox2_list: Path, vox2_root: Path, converted_root: Path,
                      failed: dict[str, str]) -> tuple[list[tuple[str, str, Path]], list[BadAudio]]:
    """Every listed VoxCeleb2-dev file, through its converted wav when the tree is m4a; failed conversions are
    bad audio."""
    entries: list[tuple[str, str, Path]] = []
    bad: list[BadAudio] = []
    for rel in read_list(vox2_list):
        utt = str(Path(rel).with_suffix(".wav"))
        if rel.endswith(".m4a"):
            path = Path(os.path.abspath(wav_path_for(rel, converted_root)))
            if rel in failed:
                bad.append(BadAudio("train", utt, Path(os.path.abspath(Path(vox2_root) / rel)), failed[rel]))
                continue
        else:
            path = Path(os.path.abspath(Path(vox2_root) / rel))
        entries.append(("train", utt, path))
    return entries, bad


def _read_trial_lists(trials: dict[str, Path], vox1_set: set[str]) -> dict[str, list[Trial]]:
    """The trial lists, their ids checked against VoxCeleb1; a list with one label only is refused."""
    lists = {name: read_trials(path, vox1_set) for name, path in trials.items()}
    for name, listed in lists.items():
        labels = {t.label for t in listed}
        if len(labels) < 2:  # EER and minDCF need both: refuse now, not when scoring after all the training
            only = "target trials (label 1)" if labels == {1} else "non-target trials (label 0)"
            raise UserError(f"{trials[name]}: only {only}: EER and minDCF need target and non-target trials")
    return lists


def _stop_on_bad_audio(bad: list[BadAudio], on_bad_audio: str) -> None:
    if bad and on_bad_audio == "stop":
        listing = "\n".join(f"  {b.reason}" for b in bad)
        raise UserError(f"{len(bad)} bad audio file(s) (set corpus.on_bad_audio: skip to leave them out):\n"
                        f"{listing}")


def _check_unseen_speakers(lists: dict[str, list[Trial]], trials: dict[str, Path], train_speakers: set[str],
                           vox1: list[str], whole: list[str], vox2_root: Path) -> None:
    """Trial speakers must be unseen; E/H lists use all of VoxCeleb1, so no Vox1 speaker may train."""
    for name, listed in lists.items():
        leaked = sorted({u.split("/")[0] for t in listed for u in (t.enroll, t.test)} & train_speakers)
        if leaked:
            raise UserError(f"{trials[name]}: trial speaker(s) {', '.join(leaked[:10])} also in the training "
                            f"set ({vox2_root}): the scores would not measure unseen speakers")
    if whole:
        leaked = sorted({u.split("/")[0] for u in vox1} & train_speakers)
        if leaked:
            raise UserError(f"{', '.join(whole)} use all of VoxCeleb1, but VoxCeleb1 speaker(s) "
                            f"{', '.join(leaked[:10])} are in the training set ({vox2_root})")


def _write_outputs(out_dir: Path, bad: list[BadAudio], lists: dict[str, list[Trial]], test: list[Utterance],
                   train: list[Utterance]) -> None:
    """Every text first (its checks may refuse a name), then all files at once."""
    texts = {out_dir / "bad_audio.tsv": _bad_audio_text(out_dir / "bad_audio.tsv", bad)}
    texts |= {out_dir / "trials" / f"{name}.txt": trials_text(out_dir / "trials" / f"{name}.txt", listed)
              for name, listed in lists.items()}
    texts[out_dir / "test.tsv"] = manifest_text(out_dir / "test.tsv", test)
    texts[out_dir / "train.tsv"] = manifest_text(out_dir / "train.tsv", train)
    (out_dir / "trials").mkdir(parents=True, exist_ok=True)
    write_texts_atomic(texts)


def build_voxceleb(vox2_list: Path, vox2_root: Path, converted_root: Path, vox1_root: Path,
                   trials: dict[str, Path], out_dir: Path, on_bad_audio: str = "stop",
                   convert_reports: list[Path] = (), workers: int = 8) -> dict:
    """Manifests, trial lists and the bad-audio list of a VoxCeleb study (see the module docstring).

    Raises UserError naming the file, line or speaker: bad audio when `on_bad_audio` is "stop"
    (every bad file listed), a trial list that is empty, has one label only, a bad label or an utterance
    not in the evaluation set, a trial-list speaker that is also a training speaker, or a file name that
    a manifest cannot store. Then no output is written.
    """
    if on_bad_audio not in ("stop", "skip"):
        raise UserError(f"on_bad_audio must be 'stop' or 'skip', got {on_bad_audio!r}")
    if not trials:
        raise UserError("no trial lists configured (corpus.voxceleb.trials)")
    out_dir = Path(out_dir)
    entries, bad = _training_entries(vox2_list, vox2_root, converted_root, read_failures(list(convert_reports)))

    # evaluation: the VoxCeleb1 utterances the lists use (all of them for E/H)
    vox1 = list_audio(vox1_root, (".wav",))
    vox1_set = set(vox1)
    lists = _read_trial_lists(trials, vox1_set)
    whole = sorted(name for name in lists if name in WHOLE_VOX1_LISTS)
    wanted = vox1_set if whole else {u for listed in lists.values() for t in listed for u in (t.enroll, t.test)}
    entries += [("test", utt, Path(os.path.abspath(Path(vox1_root) / utt))) for utt in vox1 if utt in wanted]

    log.info("checking %d files", len(entries))
    good, bad_checked = _check_all(entries, workers)
    bad += bad_checked
    _stop_on_bad_audio(bad, on_bad_audio)
    train, test = good["train"], good["test"]
    if not train:
        raise UserError(f"{vox2_root}: no usable training audio")
    train_speakers = {u.speaker for u in train}
    _check_unseen_speakers(lists, trials, train_speakers, vox1, whole, vox2_root)

    # every trial utterance must have survived the audio checks; say why when it did not
    test_utts = {u.utt for u in test}
    why = {b.utt: f"left out as bad audio: {b.reason}" for b in bad if b.split == "test"}
    lists = {name: read_trials(trials[name], test_utts, why) for name in lists}
    _write_outputs(out_dir, bad, lists, test, train)
    if bad:
        log.warning("%d bad audio file(s) left out, listed in %s", len(bad), out_dir / "bad_audio.tsv")
    return {
        "speakers": {"train": len(train_speakers), "test": len({u.speaker for u in test})},
        "utterances": {"train": len(train), "test": len(test)},
        "hours": {"train": round(sum(u.seconds for u in train) / 3600, 4),
                  "test": round(sum(u.seconds for u in test) / 3600, 4)},
        "trials": {name: len(listed) for name, listed in lists.items()},
        "bad_audio": len(bad),
    }
