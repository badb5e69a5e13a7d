from pathlib import Path

import numpy as np
import torch

from svbench.corpus.manifest import read_manifest
from svbench.embedding import EmbeddingSettings, embed, embed_utterances
from svbench.features import FeatureStore
from svbench.models import ArchSpec, build
from svbench.scoring import score_lists

SPEC = ArchSpec(name="tiny", block="basic", stages=(1, 1, 1, 1), width=4, embedding=32)


def _model(path: Path) -> None:
    torch.manual_seed(0)
    model = build(SPEC)
    torch.save({"spec": SPEC.to_dict(), "model": model.state_dict()}, path)


def test_batched_embeddings_equal_one_at_a_time(tiny_corpus: Path) -> None:
    torch.manual_seed(0)
    model = build(SPEC).eval()
    store = FeatureStore(tiny_corpus / "features" / "test")
    utts = store.utterances
    # duplicate lengths so that real batches form: every utterance twice
    batched = embed_utterances(model, store, utts + utts, torch.device("cpu"), progress=False)
    with torch.no_grad():
        single = np.stack([model(torch.from_numpy(np.asarray(store.get(u), np.float32))[None]).numpy()[0]
                           for u in utts])
    np.testing.assert_allclose(batched[: len(utts)], single, atol=1e-4)
    np.testing.assert_allclose(batched[len(utts):], single, atol=1e-4)


def test_embed_and_score_write_every_file(tiny_corpus: Path, tmp_path: Path) -> None:
    _model(tmp_path / "model.pt")
    embed(tmp_path / "model.pt", tiny_corpus / "features/test", tiny_corpus / "corpus/test.tsv",
          tiny_corpus / "features/train", tiny_corpus / "corpus/train.tsv", tmp_path / "emb",
          EmbeddingSettings(crop_frames=50))
    test = np.load(tmp_path / "emb/test.npz")
    train = np.load(tmp_path / "emb/train.npz")
    assert len(test["ids"]) == len(read_manifest(tiny_corpus / "corpus/test.tsv"))
    assert test["embeddings"].shape[1] == 32 and np.isfinite(test["embeddings"]).all()
    assert train["cohort"].shape == (6, 32) and train["mean"].shape == (32,)
    metrics = score_lists(tmp_path / "emb", {"synthetic": tiny_corpus / "corpus/trials/synthetic.txt"},
                          tmp_path / "scores", top_n=3)
    m = metrics["synthetic"]
    assert m["trials"] == 40 and {"cosine", "asnorm"} <= set(m)
    assert 0 <= m["cosine"]["eer"] <= 1 and "min_dcf_0.01" in m["asnorm"]
    lines = (tmp_path / "scores/synthetic.tsv").read_text().splitlines()
    assert lines[0] == "label\tenroll\ttest\tcosine\tasnorm" and len(lines) == 41


def test_embedding_settings_come_from_the_config_block_and_name_the_key() -> None:
    import pytest

    from svbench.embedding import EmbeddingSettings
    from svbench.errors import UserError

    assert EmbeddingSettings.from_config({}) == EmbeddingSettings(200, "auto")
    assert EmbeddingSettings.from_config({"crop_frames": 64, "device": "cuda:1"}).device == "cuda:1"
    for block, key in (({"crop_frames": 4}, "embedding.crop_frames"), ({"device": "gpu"}, "embedding.device"),
                       ({"crop": 1}, "embedding.crop")):
        with pytest.raises(UserError, match=key):
            EmbeddingSettings.from_config(block)


def test_the_speaker_mean_cohort_equals_a_direct_computation(tiny_corpus: Path, tmp_path: Path) -> None:
    """WeSpeaker's cohort: every training speaker, the mean of its whole-utterance embeddings; the training mean
    is the mean over those utterances. The crops cohort stays an option, and the scores say which was used."""
    _model(tmp_path / "model.pt")
    train_manifest = read_manifest(tiny_corpus / "corpus/train.tsv")
    embed(tmp_path / "model.pt", tiny_corpus / "features/test", tiny_corpus / "corpus/test.tsv",
          tiny_corpus / "features/train", tiny_corpus / "corpus/train.tsv", tmp_path / "emb")
    train = np.load(tmp_path / "emb/train.npz")
    torch.manual_seed(0)
    model = build(SPEC).eval()
    store = FeatureStore(tiny_corpus / "features/train")
    with torch.no_grad():
        direct = {u.utt: model(torch.from_numpy(np.asarray(store.get(u.utt), np.float32))[None]).numpy()[0]
                  for u in train_manifest}
    speakers = sorted({u.speaker for u in train_manifest})
    expected = np.stack([np.mean([direct[u.utt] for u in train_manifest if u.speaker == s], axis=0)
                         for s in speakers])
    assert train["speakers"].tolist() == speakers and str(train["cohort_kind"]) == "speaker_mean"
    np.testing.assert_allclose(train["cohort"], expected, atol=1e-4)
    np.testing.assert_allclose(train["mean"], np.mean(list(direct.values()), axis=0), atol=1e-4)
    assert int(train["cohort_utts"]) == len(train_manifest)
    metrics = score_lists(tmp_path / "emb", {"synthetic": tiny_corpus / "corpus/trials/synthetic.txt"},
                          tmp_path / "scores", top_n=3)
    assert metrics["cohort_kind"] == "speaker_mean" and metrics["cohort_size"] == len(speakers)

    embed(tmp_path / "model.pt", tiny_corpus / "features/test", tiny_corpus / "corpus/test.tsv",
          tiny_corpus / "features/train", tiny_corpus / "corpus/train.tsv", tmp_path / "crops",
          EmbeddingSettings(crop_frames=50, cohort="crops"))
    crops = np.load(tmp_path / "crops/train.npz")
    assert str(crops["cohort_kind"]) == "crops" and not np.allclose(crops["cohort"], expected, atol=1e-3)


def test_a_per_speaker_limit_keeps_every_speaker_in_the_cohort() -> None:
    from svbench.corpus.manifest import Utterance
    from svbench.embedding import cohort_utterances

    train = [Utterance(f"s{k % 5}/u{k}", f"s{k % 5}", Path(f"s{k % 5}/u{k}.wav"), 1.0) for k in range(5 * 40)]
    kept = cohort_utterances(train, "speaker_mean", 3, 0, np.random.default_rng(0))
    assert sorted({u.speaker for u in kept}) == [f"s{k}" for k in range(5)] and len(kept) == 15
    assert cohort_utterances(train, "speaker_mean", 0, 0, np.random.default_rng(0)) == train
    sampled = cohort_utterances(train, "crops", 0, 10, np.random.default_rng(0))
    assert len(sampled) == 10 and sampled == sorted(sampled, key=train.index)
