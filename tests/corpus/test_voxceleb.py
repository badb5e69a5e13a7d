"""VoxCeleb from disk: listing, m4a conversion, bad audio, trial lists, manifests, and the workflow on a tiny tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import REPO

from svbench.corpus.audio import AudioError, check_wav, write_wav
from svbench.corpus.convert import convert_batch, convert_file
from svbench.corpus.manifest import read_manifest, read_trials
from svbench.corpus.synthetic import generate
from svbench.corpus.voxceleb import build_voxceleb, list_audio, list_vox2
from svbench.errors import UserError
from svbench.features import extract_shard, merge_index

BIN = Path(sys.executable).parent
HAVE_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg not installed")


def _to_m4a(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-c:a", "aac", "-b:a", "64k",
                    str(dst)], check=True)


def _write_pcm(path: Path, frames: int, rate: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(frames * channels, "<i2").tobytes())


@pytest.fixture(scope="session")
def vox_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean VoxCeleb-shaped source: vox2 as wav (and as m4a when ffmpeg exists), vox1 wav, three trial lists."""
    root = tmp_path_factory.mktemp("vox")
    gen = root / "gen"
    generate(gen, n_train_speakers=6, n_test_speakers=4, utts_per_speaker=4, sessions_per_speaker=2,
             min_seconds=1.0, max_seconds=1.5, n_trials=40, seed=5, progress=False)
    for u in read_manifest(gen / "train.tsv"):
        (root / "vox2_wav" / u.utt).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(u.path, root / "vox2_wav" / u.utt)
        if HAVE_FFMPEG:
            _to_m4a(u.path, (root / "vox2_m4a" / u.utt).with_suffix(".m4a"))
    for u in read_manifest(gen / "test.tsv"):
        (root / "vox1" / u.utt).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(u.path, root / "vox1" / u.utt)
    lines = (gen / "trials" / "synthetic.txt").read_text().splitlines(keepends=True)
    (root / "lists").mkdir()
    (root / "lists" / "veri_test2.txt").write_text("".join(lines[::2]))
    (root / "lists" / "list_test_all2.txt").write_text("".join(lines))
    (root / "lists" / "list_test_hard2.txt").write_text("".join(lines[1::2]))
    shutil.rmtree(gen)
    return root




def _lists(vox: Path, names: tuple[str, ...] = ("vox1_o", "vox1_e", "vox1_h")) -> dict[str, Path]:
    files = {"vox1_o": "veri_test2.txt", "vox1_e": "list_test_all2.txt", "vox1_h": "list_test_hard2.txt"}
    return {name: vox / "lists" / files[name] for name in names}


def _build(vox: Path, out: Path, tree: str = "vox2_wav", **kw) -> dict:
    list_vox2(vox / tree, out / "vox2_files.txt")
    kw.setdefault("trials", _lists(vox))
    return build_voxceleb(out / "vox2_files.txt", vox / tree, out / "converted", vox / "vox1", out_dir=out, **kw)


def _break(vox: Path) -> dict[str, Path]:
    """One file of every kind of bad audio in the VoxCeleb2 tree."""
    base = vox / "vox2_wav" / "id00001" / "badbadbad00"
    bad = {name: base / f"{k:05d}.wav" for k, name in
           enumerate(["empty", "text", "truncated", "rate", "stereo", "no_frames"], start=1)}
    base.mkdir(parents=True)
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("not audio, just words")
    _write_pcm(bad["truncated"], 16000)
    bad["truncated"].write_bytes(bad["truncated"].read_bytes()[:-4000])
    _write_pcm(bad["rate"], 8000, rate=8000)
    _write_pcm(bad["stereo"], 16000, channels=2)
    _write_pcm(bad["no_frames"], 0)
    return bad


# --- audio checks -------------------------------------------------------------------------------------


def test_check_wav_names_file_and_problem(vox: Path) -> None:
    bad = _break(vox)
    expected = {"empty": "empty file", "text": "not a readable PCM wav", "truncated": "truncated: header says 16000",
                "rate": "sample rate 8000 Hz", "stereo": "2 channels", "no_frames": "no audio frames"}
    for name, path in bad.items():
        with pytest.raises(AudioError, match=f"{path.name}.*{expected[name]}"):
            check_wav(path)
    good = next((vox / "vox1").rglob("*.wav"))
    assert 1.0 <= check_wav(good) <= 1.6


def test_check_wav_accepts_extra_chunks(tmp_path: Path) -> None:
    # ffmpeg writes a LIST chunk before `data`: the truncation check must walk the chunks
    write_wav(tmp_path / "a.wav", np.zeros(1600))
    data = (tmp_path / "a.wav").read_bytes()
    extra = b"LIST" + (6).to_bytes(4, "little") + b"INFOab"
    riff_size = int.from_bytes(data[4:8], "little") + len(extra)
    (tmp_path / "b.wav").write_bytes(b"RIFF" + riff_size.to_bytes(4, "little") + data[8:36] + extra + data[36:])
    assert check_wav(tmp_path / "b.wav") == pytest.approx(0.1)


# --- listing and manifests -------------------------------------------------------------------------------


def test_listing_and_manifests_from_a_wav_tree(vox: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert list_vox2(vox / "vox2_wav", out / "vox2_files.txt") == {"files": 24, "format": "wav"}
    summary = _build(vox, out)
    assert summary["utterances"] == {"train": 24, "test": 16} and summary["bad_audio"] == 0
    train = read_manifest(out / "train.tsv")
    assert train[0].utt == "id00001/" + train[0].utt.split("/", 1)[1] and train[0].utt.endswith(".wav")
    assert all(u.path.is_absolute() and u.path.exists() and u.seconds > 0.9 for u in train)
    assert {u.speaker for u in read_manifest(out / "test.tsv")} == {f"id1000{k}" for k in range(1, 5)}
    for name, path in _lists(vox).items():
        assert read_trials(out / "trials" / f"{name}.txt") == read_trials(path)
    assert (out / "bad_audio.tsv").read_text() == "split\tutt\tpath\treason\n"


def test_only_o_list_evaluates_only_its_utterances(vox: Path, tmp_path: Path) -> None:
    o = _lists(vox)["vox1_o"]
    o.write_text("".join(o.read_text().splitlines(keepends=True)[:3]))
    summary = _build(vox, tmp_path / "out", trials=_lists(vox, ("vox1_o",)))
    used = {u for t in read_trials(_lists(vox)["vox1_o"]) for u in (t.enroll, t.test)}
    assert {u.utt for u in read_manifest(tmp_path / "out" / "test.tsv")} == used
    assert summary["utterances"]["test"] == len(used) < 16


def test_missing_tree_or_empty_tree(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nowhere.*not found"):
        list_vox2(tmp_path / "nowhere", tmp_path / "l.txt")
    (tmp_path / "empty" / "id00001" / "v").mkdir(parents=True)
    with pytest.raises(ValueError, match="no .m4a or .wav"):
        list_vox2(tmp_path / "empty", tmp_path / "l.txt")
    assert not (tmp_path / "l.txt").exists()


# --- bad audio --------------------------------------------------------------------------------------------


def test_bad_audio_stops_listing_every_file_and_writes_nothing(vox: Path, tmp_path: Path) -> None:
    bad = _break(vox)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="6 bad audio file") as err:
        _build(vox, out)
    for path in bad.values():
        assert str(path) in str(err.value)
    assert not any(out.glob("*.tsv")) and not (out / "trials").exists()


def test_bad_audio_skip_leaves_them_out_and_lists_them(vox: Path, tmp_path: Path) -> None:
    bad = _break(vox)
    out = tmp_path / "out"
    summary = _build(vox, out, on_bad_audio="skip")
    assert summary["bad_audio"] == 6 and summary["utterances"]["train"] == 24
    rows = [line.split("\t") for line in (out / "bad_audio.tsv").read_text().splitlines()[1:]]
    assert {Path(r[2]) for r in rows} == set(bad.values())
    assert all(r[0] == "train" and r[3] for r in rows)
    assert not {str(p) for p in bad.values()} & {str(u.path) for u in read_manifest(out / "train.tsv")}


def test_bad_trial_utterance_in_skip_mode_names_line_and_reason(vox: Path, tmp_path: Path) -> None:
    enroll = read_trials(_lists(vox)["vox1_o"])[0].enroll
    (vox / "vox1" / enroll).write_bytes(b"")
    with pytest.raises(ValueError, match=rf"veri_test2\.txt:1: unknown utterance '{enroll}' \(left out as bad audio"):
        _build(vox, tmp_path / "out", on_bad_audio="skip")
    assert not (tmp_path / "out" / "train.tsv").exists()


# --- trial lists ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2 {a} {b}\n", r"list_test_hard2\.txt:3: label '2' is not 0 or 1"),
        ("1 {a}\n", r"list_test_hard2\.txt:3: expected 3 fields"),
        ("0 {a} id10001/nosuchvideo/00001.wav\n", r"list_test_hard2\.txt:3: unknown utterance 'id10001/nosuchvideo"),
    ],
)
def test_broken_trial_list_names_list_line_and_item(vox: Path, tmp_path: Path, line: str, expected: str) -> None:
    path = _lists(vox)["vox1_h"]
    lines = path.read_text().splitlines(keepends=True)
    first = read_trials(path)[0]
    path.write_text("".join(lines[:2]) + line.format(a=first.enroll, b=first.test) + "".join(lines[2:]))
    with pytest.raises(ValueError, match=expected):
        _build(vox, tmp_path / "out")
    assert not (tmp_path / "out" / "test.tsv").exists()


def test_vox1_speaker_in_training_stops_with_e_h_lists(vox: Path, tmp_path: Path) -> None:
    # a VoxCeleb1 speaker that no trial list of O uses, copied into the training tree
    o_speakers = {u.split("/")[0] for t in read_trials(_lists(vox)["vox1_o"]) for u in (t.enroll, t.test)}
    spare = sorted({p.name for p in (vox / "vox1").iterdir()} - o_speakers)
    speaker = spare[0] if spare else "id10099"
    if not spare:
        shutil.copytree(next((vox / "vox1").iterdir()), vox / "vox1" / speaker)
    shutil.copytree(vox / "vox1" / speaker, vox / "vox2_wav" / speaker)
    with pytest.raises(ValueError, match=f"use all of VoxCeleb1.*{speaker}|{speaker}.*also in the training"):
        _build(vox, tmp_path / "out")
    assert not (tmp_path / "out" / "train.tsv").exists()


def test_trial_speaker_in_training_stops(vox: Path, tmp_path: Path) -> None:
    speaker = read_trials(_lists(vox)["vox1_o"])[0].enroll.split("/")[0]
    shutil.copytree(vox / "vox1" / speaker, vox / "vox2_wav" / speaker)
    with pytest.raises(ValueError, match=rf"veri_test2\.txt: trial speaker\(s\) {speaker} also in the training"):
        _build(vox, tmp_path / "out", trials=_lists(vox, ("vox1_o",)))


# --- m4a conversion --------------------------------------------------------------------------------------------


@needs_ffmpeg
def test_convert_batches_resume_and_record_failures(vox: Path, tmp_path: Path) -> None:
    src = vox / "vox2_m4a"
    (src / "id00001" / "badbadbad00").mkdir()
    (src / "id00001" / "badbadbad00" / "00001.m4a").write_text("not an m4a")
    out = tmp_path / "out"
    assert list_vox2(src, out / "vox2_files.txt") == {"files": 25, "format": "m4a"}
    dst = out / "converted"

    # an interrupted first run: batch 0 done, a temp file left half-written in batch 1
    counts = convert_batch(out / "vox2_files.txt", src, dst, 0, 10, out / "b0.tsv", workers=2)
    assert counts == {"converted": 9, "kept": 0, "failed": 1}  # the broken file sorts first
    first = sorted(dst.rglob("*.wav"))
    stamps = {p: p.stat().st_mtime_ns for p in first}
    some = sorted(list_audio(src))[12]
    tmp = (dst / some).with_suffix(".wav")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.with_name(f".{tmp.name}.tmp").write_bytes(b"RIFF half")

    # the rerun of batch 0 converts nothing; the other batches convert only what is missing
    assert convert_batch(out / "vox2_files.txt", src, dst, 0, 10, out / "b0.tsv", workers=2) == {
        "converted": 0, "kept": 9, "failed": 1}
    for k in (1, 2):
        convert_batch(out / "vox2_files.txt", src, dst, k, 10, out / f"b{k}.tsv", workers=2)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert len(list(dst.rglob("*.wav"))) == 24 and not list(dst.rglob(".*.tmp"))
    assert all(check_wav(p) > 0.9 for p in dst.rglob("*.wav"))
    report = (out / "b0.tsv").read_text()
    assert "id00001/badbadbad00/00001.m4a\tfailed\t" in report and "ffmpeg failed" in report

    # the failed file is bad audio: stop names it, skip lists it
    reports = [out / f"b{k}.tsv" for k in range(3)]
    kw = {"trials": _lists(vox), "convert_reports": reports}
    with pytest.raises(ValueError, match="(?s)1 bad audio file.*badbadbad00/00001.m4a: ffmpeg failed \\(Invalid data"):
        build_voxceleb(out / "vox2_files.txt", src, dst, vox / "vox1", out_dir=out, **kw)
    summary = build_voxceleb(out / "vox2_files.txt", src, dst, vox / "vox1", out_dir=out, on_bad_audio="skip", **kw)
    assert summary["utterances"]["train"] == 24 and summary["bad_audio"] == 1
    assert all(str(u.path).startswith(str(dst)) for u in read_manifest(out / "train.tsv"))


@needs_ffmpeg
def test_convert_file_never_leaves_a_partial_wav(tmp_path: Path) -> None:
    (tmp_path / "x.m4a").write_bytes(b"\x00" * 100)
    with pytest.raises(AudioError, match="x.m4a"):
        convert_file(tmp_path / "x.m4a", tmp_path / "out" / "x.wav")
    assert list((tmp_path / "out").iterdir()) == []


def test_convert_without_ffmpeg_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("id00001/v/00001.m4a\n")
    with pytest.raises(UserError, match="ffmpeg not found"):
        convert_batch(tmp_path / "l.txt", tmp_path, tmp_path / "o", 0, 10, tmp_path / "r.tsv", ffmpeg="no-ffmpeg-here")


# --- features: an interrupted extraction redoes only unfinished shards -----------------------------------------


def test_interrupted_features_redo_only_unfinished_shards(vox: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _build(vox, out, trials=_lists(vox, ("vox1_o",)))
    feats = out / "features"
    for k in range(3):
        extract_shard(out / "train.tsv", feats, k, 3, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in feats.iterdir()}
    # interrupted: shard 1 wrote its data but not its index; shard 2 never finished
    (feats / "shard0001.index.tsv").unlink()
    (feats / "shard0002.npy").unlink()
    (feats / "shard0002.index.tsv").unlink()
    with pytest.raises(UserError, match="shard0001, shard0002"):
        merge_index(feats, 3)
    for k in range(3):
        extract_shard(out / "train.tsv", feats, k, 3, progress=False)
    assert (feats / "shard0000.npy").stat().st_mtime_ns == stamps[feats / "shard0000.npy"]
    assert (feats / "shard0001.npy").stat().st_mtime_ns != stamps[feats / "shard0001.npy"]
    assert len(merge_index(feats, 3).read_text().splitlines()) == 25


# --- the workflow ----------------------------------------------------------------------------------------------


def _snakemake(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _tiny_vox_config(vox: Path, workdir: Path, tree: str, **corpus) -> Path:
    config = yaml.safe_load((REPO / "tests/data/tiny.yaml").read_text())
    config["corpus"] = {"kind": "voxceleb", **corpus, "voxceleb": {
        "vox2_dev": str(vox / tree), "vox1": str(vox / "vox1"),
        "trials": {name: str(path) for name, path in _lists(vox).items()},
        "converted_root": str(workdir / "vox2_converted"), "convert": {"batch_size": 10, "threads": 2}}}
    config["features"] = {"shards": 2}
    path = workdir / "tiny_vox.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_voxceleb_config_plans_one_training_job_per_arch_and_seed(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config/voxceleb.yaml").read_text())
    run = _snakemake("-n", "-d", str(tmp_path), "--configfile", str(REPO / "config/voxceleb.yaml"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stats = dict(line.split() for line in run.stdout.split("Job stats:")[1].splitlines()[3:]
                 if len(line.split()) == 2)
    assert int(stats["train"]) == len(config["grid"]) * len(config["seeds"])
    assert int(stats["features_shard"]) == 2 * config["features"]["shards"]
    assert "corpus_list_vox2" in stats and "corpus_voxceleb" in stats


def test_workflow_stops_on_bad_audio_and_leaves_no_manifest(vox: Path, tmp_path: Path) -> None:
    bad = _break(vox)
    config = _tiny_vox_config(vox, tmp_path / "w", "vox2_wav")
    run = _snakemake("-d", str(tmp_path / "w"), "--configfile", str(config), "-c2", "results/corpus/train.tsv")
    assert run.returncode != 0
    log = (tmp_path / "w/results/logs/corpus/voxceleb.log").read_text()
    assert all(str(p) in log for p in bad.values())
    assert not (tmp_path / "w/results/corpus/train.tsv").exists()
    assert not (tmp_path / "w/results/corpus/convert").exists()  # a wav tree needs no conversion job


@pytest.mark.e2e
def test_voxceleb_tree_to_scores_on_three_lists(vox: Path, tmp_path: Path) -> None:
    tree = "vox2_m4a" if HAVE_FFMPEG else "vox2_wav"
    broken = vox / tree / "id00002" / "brokenvid00" / ("00001.m4a" if HAVE_FFMPEG else "00001.wav")
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\x00" * 64)
    work = tmp_path / "w"
    config = _tiny_vox_config(vox, work, tree, on_bad_audio="skip")
    run = _snakemake("-d", str(work), "--configfile", str(config), "-c2", timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    res = work / "results"
    for name in ("vox1_o", "vox1_e", "vox1_h"):
        assert len((res / "scores/tinyA/seed0" / f"{name}.tsv").read_text().splitlines()) >= 20
    metrics = json.loads((res / "scores/tinyA/seed0/metrics.json").read_text())
    assert {"vox1_o", "vox1_e", "vox1_h"} <= set(metrics)
    bad = (res / "corpus/bad_audio.tsv").read_text().splitlines()
    assert len(bad) == 2 and "brokenvid00/00001" in bad[1]
    assert len(read_manifest(res / "corpus/train.tsv")) == 24
    if HAVE_FFMPEG:
        assert len(list((res / "corpus/convert").glob("batch*.tsv"))) == 3  # 25 m4a in batches of 10
        assert len(list((work / "vox2_converted").rglob("*.wav"))) == 24
    assert (res / "study/summary.csv").exists()
