"""Faults at the corpus step, mostly through the ``svbench corpus`` CLI: damaged wav headers (seeded fuzz),
awkward file names, all-or-nothing outputs, broken trial lists, and file modes under the umask."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from svbench.corpus.audio import AudioError, check_wav, read_wav, write_wav
from svbench.corpus.manifest import read_manifest, read_trials
from svbench.corpus.synthetic import generate
from svbench.features import extract_shard, merge_index

BIN = Path(sys.executable).parent
HEADER = 44  # bytes of the canonical RIFF/WAVE/fmt/data header that write_wav writes


def _svbench(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "svbench"), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def vox_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small VoxCeleb-shaped tree from the project's own writer: vox2/ (training), vox1/ (test), lists/."""
    root = tmp_path_factory.mktemp("faults")
    gen = root / "gen"
    generate(gen, n_train_speakers=2, n_test_speakers=3, utts_per_speaker=4, sessions_per_speaker=2,
             min_seconds=0.3, max_seconds=0.5, n_trials=20, seed=11, progress=False)
    for tree, split in (("vox2", "train"), ("vox1", "test")):
        for u in read_manifest(gen / f"{split}.tsv"):
            (root / tree / u.utt).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(u.path, root / tree / u.utt)
    (root / "lists").mkdir()
    shutil.copy(gen / "trials" / "synthetic.txt", root / "lists" / "o.txt")
    shutil.rmtree(gen)
    return root




def _corpus(vox: Path, out: Path, on_bad_audio: str = "stop",
            trials: dict[str, Path] | None = None) -> subprocess.CompletedProcess:
    """`svbench corpus list` then `svbench corpus voxceleb`; the first failing step's result, else the second's."""
    listed = _svbench("corpus", "list", "--root", vox / "vox2", "--out", out / "vox2_files.txt")
    if listed.returncode != 0:
        return listed
    lists = {name: str(path) for name, path in (trials or {"vox1_o": vox / "lists" / "o.txt"}).items()}
    corpus = {"kind": "voxceleb", "on_bad_audio": on_bad_audio,
              "voxceleb": {"vox2_dev": str(vox / "vox2"), "vox1": str(vox / "vox1"), "trials": lists,
                           "converted_root": str(out / "converted")}}
    return _svbench("corpus", "voxceleb", "--vox2-list", out / "vox2_files.txt", "--corpus", json.dumps(corpus),
                    "--out", out)


def _error_line(run: subprocess.CompletedProcess) -> str:
    """The CLI's one error line (log lines may come before it); no traceback."""
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("svbench: error: ") and last != "svbench: error: ", run.stderr
    return last


def _bad_rows(out: Path) -> dict[str, str]:
    """bad_audio.tsv as {path: reason}."""
    rows = [line.split("\t") for line in (out / "bad_audio.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    assert all(len(r) == 4 for r in rows), rows
    return {r[2]: r[3] for r in rows}


def _assert_reason(message: str, path: Path) -> None:
    """An audio error names the file and says what is wrong with it (not `... wav file ()`)."""
    assert message.startswith(f"{path}: "), message
    reason = message[len(f"{path}: "):]
    assert reason.strip() and "()" not in reason, message


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below `folder` with its bytes and inode (a rewrite with the same bytes still shows)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_ino) for p in folder.rglob("*")
            if p.is_file() and p.name != "vox2_files.txt"}  # the listing is the list step's, rewritten as the same


# --- 1. damaged headers: a seeded fuzz of the first 44 bytes ------------------------------------------


def _seed_wavs(folder: Path) -> list[bytes]:
    """A few small 16-bit PCM wavs from the project's writer, of different lengths."""
    rng = np.random.default_rng(0)
    seeds = []
    for k, n in enumerate((1600, 2401, 4000, 8000)):
        write_wav(folder / f"seed{k}.wav", rng.uniform(-0.5, 0.5, n))
        seeds.append((folder / f"seed{k}.wav").read_bytes())
    return seeds


def _fuzz(seeds: list[bytes], n: int, seed: int = 20240611) -> Iterator[bytes]:
    """`n` copies of the seeds, each with 3 distinct bytes of its header changed (to another value)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        data = bytearray(seeds[i % len(seeds)])
        for pos in rng.choice(HEADER, size=3, replace=False):
            data[pos] = (data[pos] + int(rng.integers(1, 256))) % 256
        yield bytes(data)


def test_fuzzed_headers_are_read_or_rejected_with_a_reason(tmp_path: Path) -> None:
    seeds = _seed_wavs(tmp_path)
    outcomes = {"read": 0, "rejected": 0}
    for i, data in enumerate(_fuzz(seeds, 200)):
        path = tmp_path / f"fuzz{i:03d}.wav"
        path.write_bytes(data)
        try:
            seconds = check_wav(path)
        except AudioError as exc:
            _assert_reason(str(exc), path)
            outcomes["rejected"] += 1
        else:
            # what the check passes, the reader reads in full
            samples, rate = read_wav(path)
            assert rate == 16000 and samples.size == round(seconds * rate)
            outcomes["read"] += 1
        try:
            read_wav(path)
        except AudioError as exc:
            _assert_reason(str(exc), path)
    assert outcomes["rejected"] > 100  # the fuzz does damage headers


def test_header_cut_short_has_a_reason(tmp_path: Path) -> None:
    data = _seed_wavs(tmp_path)[0]
    for n in range(1, HEADER + 1):
        path = tmp_path / f"cut{n:02d}.wav"
        path.write_bytes(data[:n])
        for read in (check_wav, read_wav):
            with pytest.raises(AudioError) as err:
                read(path)
            _assert_reason(str(err.value), path)


def test_skip_lists_every_fuzzed_or_cut_file_and_never_aborts(vox: Path, tmp_path: Path) -> None:
    seeds = _seed_wavs(tmp_path)
    damaged = []
    for i, data in enumerate([*_fuzz(seeds, 200), *(seeds[0][:n] for n in range(1, HEADER + 1))]):
        path = vox / "vox2" / "id00001" / f"fuzz{i:04d}" / "00001.wav"
        path.parent.mkdir()
        path.write_bytes(data)
        damaged.append(Path(os.path.abspath(path)))
    out = tmp_path / "out"
    run = _corpus(vox, out, "skip")
    assert run.returncode == 0, run.stderr[-3000:]
    read = {str(u.path) for u in read_manifest(out / "train.tsv")}
    bad = _bad_rows(out)
    for path in damaged:
        assert (str(path) in read) != (str(path) in bad), path
        if str(path) in bad:
            _assert_reason(bad[str(path)], path)
    assert len(bad) > 100


# --- 2. file names: spaces and non-ASCII work; tab/newline are refused; all outputs or none ----------------


def test_spaces_and_non_ascii_names_work(vox: Path, tmp_path: Path) -> None:
    first = sorted((vox / "vox2" / "id00001").iterdir())[0]
    renamed = first.rename(first.with_name("vidéo clip ü"))
    for k, wav in enumerate(sorted(renamed.iterdir())):
        wav.rename(wav.with_name(f"take {k} — 日本\u00a0.wav"))
    (vox / "vox2" / "id00002").rename(vox / "vox2" / "id00002 Ærø")
    out = tmp_path / "out"
    run = _corpus(vox, out, "skip")
    assert run.returncode == 0, run.stderr[-3000:]
    train = read_manifest(out / "train.tsv")
    assert len(train) == 8 and all(u.path.exists() for u in train)
    utts = {u.utt for u in train}
    assert "id00001/vidéo clip ü/take 0 — 日本\u00a0.wav" in utts
    assert {u.speaker for u in train} == {"id00001", "id00002 Ærø"}
    assert _bad_rows(out) == {}
    # and the next step reads them
    extract_shard(out / "train.tsv", out / "features", 0, 1, progress=False)
    assert len(merge_index(out / "features", 1).read_text(encoding="utf-8").splitlines()) == 9


@pytest.mark.parametrize(("char", "why"), [("\t", "a tab or line break"), ("\n", "a tab or line break"),
                                           ("\u2028", "a tab or line break"), ("\udcff", "not UTF-8")])
def test_unstorable_name_is_refused_naming_it(vox: Path, tmp_path: Path, char: str, why: str) -> None:
    # a tab or line break cannot be in a TSV field; "\udcff" is how Python names a file whose name has byte 0xff
    wav = sorted((vox / "vox2" / "id00001").rglob("*.wav"))[0]
    odd = wav.rename(wav.with_name(f"bad{char}name.wav"))
    out = tmp_path / "out"
    line = _error_line(_corpus(vox, out, "skip"))
    assert repr(str(odd.relative_to(vox / "vox2")))[1:-1] in line and why in line
    assert not (out / "train.tsv").exists() and not (out / "vox2_files.txt").exists()


def test_a_failed_run_leaves_an_earlier_run_untouched(vox: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    lists = {"vox1_o": vox / "lists" / "o.txt", "vox1_e": vox / "lists" / "o.txt"}
    assert _corpus(vox, out, trials=lists).returncode == 0
    before = _snapshot(out)
    # the second run would differ (a bad file to skip), then fails: a VoxCeleb1 file (E: all of it in
    # test.tsv) whose name a manifest cannot hold
    (sorted((vox / "vox2").rglob("*.wav"))[0]).write_bytes(b"")
    wav = sorted((vox / "vox1").rglob("*.wav"))[-1]
    shutil.copy(wav, wav.with_name("a\tb.wav"))
    line = _error_line(_corpus(vox, out, "skip", trials=lists))
    assert "a\\tb.wav" in line
    assert _snapshot(out) == before
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left


# --- 3. trial lists: empty, one label only, not UTF-8, a directory -----------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    (b"", "no trials"),
    (b"\n  \n", "no trials"),
    (b"target", "only target trials"),
    (b"nontarget", "only non-target trials"),
])
def test_empty_or_one_label_trial_list_is_refused_naming_it(vox: Path, tmp_path: Path, text: bytes,
                                                             expected: str) -> None:
    path = tmp_path / "my list.txt"
    trials = read_trials(vox / "lists" / "o.txt")
    if text in (b"target", b"nontarget"):
        label = 1 if text == b"target" else 0
        text = "".join(f"{t.label} {t.enroll} {t.test}\n" for t in trials if t.label == label).encode()
    path.write_bytes(text)
    out = tmp_path / "out"
    line = _error_line(_corpus(vox, out, trials={"vox1_o": path}))
    assert str(path) in line and expected in line
    assert not (out / "train.tsv").exists()


def test_non_utf8_trial_list_names_file_and_line(vox: Path, tmp_path: Path) -> None:
    lines = (vox / "lists" / "o.txt").read_bytes().splitlines(keepends=True)
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"".join(lines[:2]) + b"1 id10001/caf\xe9/00001.wav id10001/x/00002.wav\n" + b"".join(lines[2:]))
    line = _error_line(_corpus(vox, tmp_path / "out", trials={"vox1_o": path}))
    assert f"{path}:3: " in line and "UTF-8" in line


def test_directory_as_trial_list_is_one_line_naming_it(vox: Path, tmp_path: Path) -> None:
    (tmp_path / "lists.d").mkdir()
    line = _error_line(_corpus(vox, tmp_path / "out", trials={"vox1_o": tmp_path / "lists.d"}))
    assert str(tmp_path / "lists.d") in line and "trial list" in line and "directory" in line


# --- 4. written files follow the umask ------------------------------------------------------------------


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_outputs_follow_the_umask(vox: Path, tmp_path: Path, umask: None, mask: int) -> None:
    os.umask(mask)
    synth = tmp_path / "synth"
    tiny = {"train_speakers": 2, "test_speakers": 2, "utts_per_speaker": 2, "sessions_per_speaker": 1,
            "min_seconds": 0.2, "max_seconds": 0.3, "trials": 4}
    run = _svbench("corpus", "synth", "--out", synth, "--synthetic", json.dumps(tiny), "--quiet")
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"
    assert _corpus(vox, out).returncode == 0
    files = [p for p in [*synth.rglob("*"), *out.rglob("*")] if p.is_file()]
    assert {p.name for p in files} >= {"train.tsv", "test.tsv", "synthetic.txt", "vox1_o.txt", "bad_audio.tsv",
                                       "vox2_files.txt", "00001.wav"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask, p


def test_outputs_written_as_one_leave_old_files_on_failure(tmp_path: Path) -> None:
    from svbench.fileio import write_texts_atomic

    (tmp_path / "a.txt").write_text("old a")
    with pytest.raises(FileNotFoundError):  # the second file's folder is missing: nothing is replaced
        write_texts_atomic({tmp_path / "a.txt": "new a", tmp_path / "missing" / "b.txt": "new b"})
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old a"
