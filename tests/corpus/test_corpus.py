"""Corpus: wav I/O, manifests, trial lists and the synthetic speaker generator."""

from __future__ import annotations

import json
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from svbench.cli import main
from svbench.corpus.audio import AudioError, read_wav, wav_info, write_wav
from svbench.corpus.manifest import Trial, Utterance, read_manifest, read_trials, write_manifest, write_trials
from svbench.corpus.synthetic import generate

# --- wav -------------------------------------------------------------------------------------------


def test_wav_round_trip(tmp_path: Path) -> None:
    x = np.sin(np.linspace(0, 200, 16000)).astype(np.float32) * 0.5
    path = tmp_path / "a.wav"
    write_wav(path, x, 16000)
    y, sr = read_wav(path)
    assert sr == 16000 and y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1 / 32767)
    assert wav_info(path) == (16000, 1, 16000)


def test_write_wav_clips_and_reads_stereo_as_mono(tmp_path: Path) -> None:
    write_wav(tmp_path / "loud.wav", np.array([2.0, -2.0, 0.0]))
    y, _ = read_wav(tmp_path / "loud.wav")
    np.testing.assert_allclose(y, [32767 / 32768, -32767 / 32768, 0.0])

    with wave.open(str(tmp_path / "stereo.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.array([1000, 3000, -2000, 0], dtype="<i2").tobytes())
    y, sr = read_wav(tmp_path / "stereo.wav")
    assert sr == 8000
    np.testing.assert_allclose(y, np.array([2000, -1000]) / 32768)


def test_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", np.zeros(100))
    write_wav(tmp_path / "a.wav", np.zeros(200))  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]
    assert wav_info(tmp_path / "a.wav")[2] == 200
    with pytest.raises(ValueError):
        write_wav(tmp_path / "b.wav", np.full(10, np.nan))
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]


def test_bad_wavs_raise_audio_error_naming_the_path(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    write_wav(good, np.zeros(1000))
    data = good.read_bytes()
    cases = {
        "empty.wav": b"",
        "text.wav": b"this is not audio at all, just some text",
        "short_header.wav": data[:20],
        "truncated.wav": data[:-500],
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(AudioError, match=name):
            read_wav(path)
    with pytest.raises(AudioError, match="missing.wav"):
        read_wav(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="text.wav"):
        wav_info(tmp_path / "text.wav")


# --- manifests and trials ----------------------------------------------------------------------------


def test_manifest_round_trip_and_relative_paths(tmp_path: Path) -> None:
    utts = [
        Utterance("id00001/abcdefghijk/00001.wav", "id00001", tmp_path / "wav" / "a.wav", 2.5),
        Utterance("id00002/ABCDEFGHIJK/00001.wav", "id00002", tmp_path / "wav" / "b.wav", 3.0000625),
    ]
    write_manifest(tmp_path / "m.tsv", utts)
    assert read_manifest(tmp_path / "m.tsv") == utts
    assert (tmp_path / "m.tsv").read_text().splitlines()[0] == "utt\tspeaker\tpath\tseconds"
    assert [p.name for p in tmp_path.iterdir()] == ["m.tsv"]

    # Relative paths are relative to the manifest's folder.
    write_manifest(tmp_path / "rel.tsv", [Utterance("u", "s", Path("wav/a.wav"), 1.0)])
    assert read_manifest(tmp_path / "rel.tsv")[0].path == tmp_path / "wav" / "a.wav"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("utt\tspeaker\tpath\n", r"m\.tsv:1: expected header"),
        ("utt\tspeaker\tpath\tseconds\nu\ts\tp\t1.0\nv\ts\tp\n", r"m\.tsv:3: expected 4"),
        ("utt\tspeaker\tpath\tseconds\nu\ts\tp\tlong\n", r"m\.tsv:2: seconds 'long'"),
        ("utt\tspeaker\tpath\tseconds\nu\ts\tp\t1\nu\ts\tp\t2\n", r"m\.tsv:3: duplicate utterance 'u'"),
    ],
)
def test_manifest_errors_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "m.tsv").write_text(text)
    with pytest.raises(ValueError, match=expected):
        read_manifest(tmp_path / "m.tsv")


def test_trials_round_trip(tmp_path: Path) -> None:
    trials = [
        Trial(1, "id10270/x6uYqmx31kE/00001.wav", "id10270/8jEAjG6SegY/00008.wav"),
        Trial(0, "id10270/x6uYqmx31kE/00001.wav", "id10300/ize_eiCFEg0/00003.wav"),
    ]
    write_trials(tmp_path / "t.txt", trials)
    assert (tmp_path / "t.txt").read_text().splitlines()[0] == (
        "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav"
    )
    known = {t.enroll for t in trials} | {t.test for t in trials}
    assert read_trials(tmp_path / "t.txt", known) == trials
    assert read_trials(tmp_path / "t.txt") == trials


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 a b\n2 a b\n", r"t\.txt:2: label '2'"),
        ("1 a b\n\n0 a\n", r"t\.txt:3: expected 3 fields"),
        ("1 a b c\n", r"t\.txt:1: expected 3 fields"),
        ("1 a b\n0 a zz\n", r"t\.txt:2: unknown utterance 'zz'"),
    ],
)
def test_trial_errors_name_file_line_and_item(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "t.txt").write_text(text)
    with pytest.raises(ValueError, match=expected):
        read_trials(tmp_path / "t.txt", {"a", "b"})


# --- synthetic corpus -------------------------------------------------------------------------------

SMALL = dict(n_train_speakers=3, n_test_speakers=4, utts_per_speaker=4, sessions_per_speaker=2,
             min_seconds=1.0, max_seconds=1.5, n_trials=20, progress=False)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    return out, generate(out, seed=7, **SMALL)


def test_layout_and_manifests(small_corpus: tuple[Path, dict]) -> None:
    out, summary = small_corpus
    train, test = read_manifest(out / "train.tsv"), read_manifest(out / "test.tsv")
    assert summary["speakers"] == {"train": 3, "test": 4}
    assert summary["utterances"] == {"train": 12, "test": 16}
    assert summary["trials"] == {"target": 10, "nontarget": 10}
    assert not {u.speaker for u in train} & {u.speaker for u in test}
    for u in train + test:
        speaker, session, name = u.utt.split("/")
        assert speaker == u.speaker and len(speaker) == 7 and speaker.startswith("id")
        assert len(session) == 11 and name.endswith(".wav") and len(name) == 9
        assert u.path == out / "wav" / u.utt and u.path.is_file()
        sr, channels, frames = wav_info(u.path)
        assert (sr, channels) == (16000, 1)
        assert frames / sr == pytest.approx(u.seconds)
        assert 1.0 - 1e-3 <= u.seconds <= 1.5 + 1e-3
    sessions = Counter((u.speaker, u.utt.split("/")[1]) for u in test)
    assert len(sessions) == 4 * 2 and set(sessions.values()) == {2}
    assert not list(out.rglob("*.tmp"))


def test_trials_are_balanced_and_known(small_corpus: tuple[Path, dict]) -> None:
    out, _ = small_corpus
    test = {u.utt: u.speaker for u in read_manifest(out / "test.tsv")}
    trials = read_trials(out / "trials" / "synthetic.txt", set(test))
    assert Counter(t.label for t in trials) == {1: 10, 0: 10}
    assert len({frozenset((t.enroll, t.test)) for t in trials}) == len(trials)  # no repeated pair
    for t in trials:
        assert t.enroll != t.test
        assert t.label == int(test[t.enroll] == test[t.test])
    # 4 speakers x 2 sessions x 2 utterances: 16 cross-session target pairs, so all 10 are cross-session
    assert all(t.enroll.split("/")[1] != t.test.split("/")[1] for t in trials if t.label)


def test_same_speaker_utterances_differ(small_corpus: tuple[Path, dict]) -> None:
    out, _ = small_corpus
    a, b = (read_wav(u.path)[0] for u in read_manifest(out / "test.tsv")[:2])
    n = min(a.size, b.size)
    assert np.corrcoef(a[:n], b[:n])[0, 1] < 0.5
    assert 0.005 < np.sqrt(np.mean(a**2)) < 0.2 and np.abs(a).max() < 1.0


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_for_a_seed(small_corpus: tuple[Path, dict], tmp_path: Path) -> None:
    out, summary = small_corpus
    assert generate(tmp_path / "again", seed=7, **SMALL) == summary
    assert _files(tmp_path / "again") == _files(out)
    generate(tmp_path / "other", seed=8, **SMALL)
    other = _files(tmp_path / "other")
    assert not set(other) & {k for k in _files(out) if k.endswith(".wav")}  # other session ids
    assert other["test.tsv"] != _files(out)["test.tsv"]


def test_synth_command_with_the_config_block_writes_the_same_corpus(small_corpus: tuple[Path, dict],
                                                                     tmp_path: Path) -> None:
    """`svbench corpus synth --synthetic JSON` (what the rule runs) maps every key onto `generate`."""
    out, _ = small_corpus
    block = {"train_speakers": 3, "test_speakers": 4, "utts_per_speaker": 4, "sessions_per_speaker": 2,
             "min_seconds": 1.0, "max_seconds": 1.5, "trials": 20, "seed": 7}
    with pytest.raises(SystemExit) as info:
        main(["corpus", "synth", "--out", str(tmp_path / "cli"), "--synthetic", json.dumps(block), "--quiet"])
    assert info.value.code == 0
    assert _files(tmp_path / "cli") == _files(out)


def test_rejects_impossible_requests(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="target pairs"):
        generate(tmp_path, **(SMALL | {"n_trials": 200, "n_train_speakers": 0}), seed=0)
    with pytest.raises(ValueError, match="sessions_per_speaker"):
        generate(tmp_path, **(SMALL | {"sessions_per_speaker": 5}), seed=0)


def _eer(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(scores)
    lab = labels[order]
    fnr = np.concatenate([[0.0], np.cumsum(lab) / lab.sum()])
    fpr = np.concatenate([[1.0], 1 - np.cumsum(1 - lab) / (1 - lab).sum()])
    i = int(np.argmax(fnr >= fpr))
    d0, d1 = fnr[i - 1] - fpr[i - 1], fnr[i] - fpr[i]
    return float(fnr[i - 1] + d0 / (d0 - d1) * (fnr[i] - fnr[i - 1]))


def test_difficulty_simple_baseline_is_between_chance_and_perfect(tmp_path: Path) -> None:
    """Mean+std log-mel with cosine scoring: far from 0 % (not trivial) and from 50 % (learnable)."""
    generate(tmp_path, n_train_speakers=0, n_test_speakers=10, utts_per_speaker=10, sessions_per_speaker=3,
             min_seconds=2.0, max_seconds=4.0, n_trials=400, seed=0, progress=False)
    emb = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # several threads are many times slower on these short, varying lengths
    try:
        for u in read_manifest(tmp_path / "test.tsv"):
            x, sr = read_wav(u.path)
            f = kaldi.fbank(torch.from_numpy(x)[None] * 32768, num_mel_bins=40, sample_frequency=sr)
            emb[u.utt] = torch.cat([f.mean(0), f.std(0)]).numpy()
    finally:
        torch.set_num_threads(threads)
    ids = list(emb)
    e = np.stack([emb[i] for i in ids])
    e -= e.mean(0)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    row = {u: k for k, u in enumerate(ids)}
    trials = read_trials(tmp_path / "trials" / "synthetic.txt", set(ids))
    scores = np.array([e[row[t.enroll]] @ e[row[t.test]] for t in trials])
    eer = _eer(scores, np.array([t.label for t in trials]))
    assert 0.05 < eer < 0.45, eer  # 0.335 when calibrated
