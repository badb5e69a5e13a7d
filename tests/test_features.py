from pathlib import Path

import numpy as np
import pytest

from svbench.corpus.audio import write_wav
from svbench.corpus.manifest import Utterance, read_manifest, write_manifest
from svbench.errors import UserError
from svbench.features import (
    FbankConfig,
    FeaturesConfig,
    FeatureStore,
    extract_shard,
    fbank,
    merge_index,
    shard_utterances,
)


def test_fbank_shape_and_mean_normalisation() -> None:
    rng = np.random.default_rng(0)
    feats = fbank(rng.normal(0, 0.1, 16000).astype(np.float32), 16000)
    assert feats.shape == (98, 80)  # 25 ms windows every 10 ms over 1 s, snip-edges
    np.testing.assert_allclose(feats.mean(axis=0), 0, atol=1e-4)


def test_fbank_rejects_wrong_sample_rate() -> None:
    with pytest.raises(ValueError, match="8000 Hz"):
        fbank(np.zeros(8000, np.float32), 8000)


def test_shards_cover_every_utterance_once() -> None:
    utts = [Utterance(f"u{i}", "s", Path("x"), 1.0) for i in range(10)]
    parts = [shard_utterances(utts, k, 3) for k in range(3)]
    assert sum(parts, []) == utts
    with pytest.raises(ValueError):
        shard_utterances(utts, 3, 3)


def test_store_reads_what_was_written(tiny_corpus: Path) -> None:
    store = FeatureStore(tiny_corpus / "features" / "train")
    utts = read_manifest(tiny_corpus / "corpus" / "train.tsv")
    assert sorted(store.utterances) == sorted(u.utt for u in utts)
    first = utts[0]
    from svbench.corpus.audio import read_wav

    samples, sr = read_wav(first.path)
    expected = fbank(samples, sr).astype(np.float16)
    got = store.get(first.utt)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, expected)
    assert isinstance(store._shard(0), np.memmap)  # memory-mapped, not loaded


def test_crop_is_random_but_seeded_and_tiles_short_utterances(tiny_corpus: Path) -> None:
    store = FeatureStore(tiny_corpus / "features" / "train")
    utt = store.utterances[0]
    a = store.crop(utt, 50, np.random.default_rng(1))
    b = store.crop(utt, 50, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    n = store.frames(utt)
    long = store.crop(utt, n * 2 + 5, np.random.default_rng(0))
    assert long.shape == (n * 2 + 5, 80)
    np.testing.assert_array_equal(long[n: 2 * n], store.get(utt).astype(np.float32))


def test_finished_shard_is_not_recomputed(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", np.zeros(8000, np.float32) + 0.01)
    write_manifest(tmp_path / "m.tsv", [Utterance("a", "s", Path("a.wav"), 0.5)])
    index = extract_shard(tmp_path / "m.tsv", tmp_path / "f", progress=False)
    stamp = index.stat().st_mtime_ns
    extract_shard(tmp_path / "m.tsv", tmp_path / "f", progress=False)
    assert index.stat().st_mtime_ns == stamp


def test_merge_names_missing_shards(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shard0001"):
        (tmp_path / "shard0000.index.tsv").write_text("utt\tshard\toffset\tframes\n")
        merge_index(tmp_path, 2)


def test_store_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="index.tsv"):
        FeatureStore(tmp_path)
    (tmp_path / "index.tsv").write_text("utt\tshard\toffset\tframes\nbroken line\n")
    with pytest.raises(ValueError, match=r"index.tsv:2"):
        FeatureStore(tmp_path)


def test_schema_features_section_matches_the_config() -> None:
    """Each FeaturesConfig field reads its own key of the schema's features section, of the key's type."""
    from support import assert_schema_matches

    assert_schema_matches(FeaturesConfig, "features")


def test_features_config_errors_name_the_key() -> None:
    assert FeaturesConfig.from_dict({"n_mels": 40}).fbank == FbankConfig(n_mels=40)
    with pytest.raises(UserError, match=r"features\.shards: must be an integer >= 1, got 0"):
        FeaturesConfig.from_dict({"shards": 0})
    with pytest.raises(UserError, match=r"features\.mels: unknown option"):
        FeaturesConfig.from_dict({"mels": 40})
