from pathlib import Path

import pandas as pd
import pytest
import torch

from svbench.models import ArchSpec
from svbench.training import Preempted, Recipe, epoch_order, load_model, train

SPEC = ArchSpec(name="tiny", block="basic", stages=(1, 1, 1, 1), width=4, embedding=32)
RECIPE = Recipe(epochs=3, batch_size=4, crop_frames=40, lr=0.1, final_lr=0.01, warmup_epochs=1,
                margin=0.2, margin_start_epoch=1, margin_end_epoch=2, threads=1)


def test_recipe_schedules() -> None:
    r = Recipe(epochs=10, batch_size=128, lr=0.1, final_lr=1e-3, warmup_epochs=2, margin=0.2,
               margin_start_epoch=4, margin_end_epoch=6)
    assert r.peak_lr() == pytest.approx(0.2)  # scaled by batch / 64
    assert r.lr_at(0, 0, 10) < r.lr_at(1, 5, 10) < r.peak_lr() + 1e-12
    assert r.lr_at(2, 0, 10) == pytest.approx(0.2)
    assert r.lr_at(9, 10, 10) == pytest.approx(1e-3)
    assert [r.margin_at(e) for e in range(8)] == pytest.approx([0, 0, 0, 0, 0.2 / 3, 0.4 / 3, 0.2, 0.2])


def test_recipe_rejects_unknown_key() -> None:
    with pytest.raises(ValueError, match="training.epoch"):
        Recipe.from_dict({"epoch": 3})


def test_epoch_order_is_seeded_and_covers_all() -> None:
    a = epoch_order(10, 10, seed=1, epoch=0)
    assert a == epoch_order(10, 10, seed=1, epoch=0)
    assert a != epoch_order(10, 10, seed=1, epoch=1)
    assert sorted(i for _, i in a) == list(range(10))


def test_train_writes_model_history_and_spec(tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    train(tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC, RECIPE, out, seed=0)
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert {"loss", "accuracy", "lr", "seconds", "samples_per_s", "data_wait_share"} <= set(history.columns)
    assert (history["data_wait_share"].between(0, 1)).all()
    model, spec = load_model(out / "model.pt")
    assert spec == SPEC
    assert model(torch.zeros(2, 60, 80)).shape == (2, 32)
    assert (out / "spec.json").read_text().count('"params"') == 1


def test_killed_run_resumes_to_the_same_weights(tiny_corpus: Path, tmp_path: Path) -> None:
    args = (tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC, RECIPE)
    train(*args, tmp_path / "straight", seed=0)
    with pytest.raises(Preempted):  # killed mid-epoch 2 (6 steps per epoch)
        train(*args, tmp_path / "resumed", seed=0, stop_after_steps=8)
    train(*args, tmp_path / "resumed", seed=0)
    a = torch.load(tmp_path / "straight" / "model.pt")["model"]
    b = torch.load(tmp_path / "resumed" / "model.pt")["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert pd.read_csv(tmp_path / "straight" / "history.csv")["loss"].tolist() == pytest.approx(
        pd.read_csv(tmp_path / "resumed" / "history.csv")["loss"].tolist())


def test_checkpoint_of_another_architecture_is_refused(tiny_corpus: Path, tmp_path: Path) -> None:
    args = (tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv")
    with pytest.raises(Preempted):
        train(*args, SPEC, RECIPE, tmp_path, stop_after_steps=1)
    other = ArchSpec(name="tiny", block="basic", stages=(1, 1, 1, 2), width=4, embedding=32)
    with pytest.raises(ValueError, match="checkpoint.pt"):
        train(*args, other, RECIPE, tmp_path)


def test_kill_at_the_last_step_of_an_epoch_resumes(tiny_corpus: Path, tmp_path: Path) -> None:
    args = (tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC, RECIPE)
    with pytest.raises(Preempted):
        train(*args, tmp_path, stop_after_steps=6)  # 24 utterances / batch 4: the epoch's last step
    train(*args, tmp_path)
    assert len(pd.read_csv(tmp_path / "history.csv")) == 3
