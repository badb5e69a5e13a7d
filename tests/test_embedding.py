from pathlib import Path

import numpy as np
import torch

from svbench.corpus.manifest import read_manifest
from svbench.embedding import embed, embed_utterances
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
          tiny_corpus / "features/train", tiny_corpus / "corpus/train.tsv", tmp_path / "emb", crop_frames=50)
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
