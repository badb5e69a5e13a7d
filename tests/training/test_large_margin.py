"""Large-margin fine-tuning (issue 17): the recipe block, starting from a trained model, resume after a kill."""

import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from support import config_schema, kill_at_checkpoint

from svbench.errors import UserError
from svbench.models import ArchSpec
from svbench.training import (
    Preempted,
    Recipe,
    StopAfterSteps,
    large_margin_recipe,
    train,
)

SPEC = ArchSpec(name="tiny", block="basic", stages=(1, 1, 1, 1), width=4, embedding=32)
TRAINING = {"epochs": 2, "batch_size": 4, "crop_frames": 40, "lr": 0.1, "final_lr": 0.01, "warmup_epochs": 1,
            "margin": 0.2, "margin_start_epoch": 1, "margin_end_epoch": 2, "threads": 1}
# the demo-scale fine-tuning: longer crops, a large margin from the start, a small learning rate
LM = {"enabled": True, "epochs": 2, "batch_size": 4, "crop_frames": 80, "lr": 0.01, "final_lr": 0.001}


def test_the_fine_tuning_recipe_is_wespeakers_over_the_training() -> None:
    recipe = large_margin_recipe(TRAINING | {"aug_prob": 0.3, "speed_perturb": True, "average_last": 4}, {})
    assert (recipe.epochs, recipe.batch_size, recipe.crop_frames) == (5, 64, 600)
    assert (recipe.lr, recipe.final_lr, recipe.warmup_epochs) == (1e-4, 2.5e-5, 1)
    assert [recipe.margin_at(e) for e in range(5)] == [0.5] * 5  # the large margin from the first step
    assert recipe.average_last == 1  # the training's averaging does not leak into the fine-tuning
    assert (recipe.aug_prob, recipe.speed_perturb, recipe.threads) == (0.3, True, 1)  # the same augmentation


@pytest.mark.parametrize(("training", "block", "key"), [({}, {"epochs": 0}, "large_margin.epochs"),
                                                        ({}, {"aug_prob": 0.1}, "large_margin.aug_prob"),
                                                        ({}, {"margin": "big"}, "large_margin.margin"),
                                                        ({"foo": 1}, {}, "training.foo"),
                                                        ({"aug_prob": 2}, {}, "training.aug_prob")])
def test_a_bad_fine_tuning_option_names_its_key(training: dict, block: dict, key: str) -> None:
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        large_margin_recipe(TRAINING | training, block)


def test_every_large_margin_key_but_its_switch_is_a_recipe_option() -> None:
    keys = config_schema("large_margin")["properties"]
    assert keys["enabled"]["default"] is False  # the demo does not fine-tune
    assert set(keys) - {"enabled"} <= {f.name for f in dataclasses.fields(Recipe)}


@pytest.fixture(scope="module")
def trained(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base")
    train(tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC,
          Recipe.from_dict(TRAINING), out, seed=0)
    return out / "model.pt"


def _data(corpus: Path) -> tuple[Path, Path]:
    return corpus / "features" / "train", corpus / "corpus" / "train.tsv"


def test_fine_tuning_starts_from_the_trained_model_and_resumes_bit_exactly(tiny_corpus: Path, trained: Path,
                                                                         tmp_path: Path) -> None:
    recipe = large_margin_recipe(TRAINING, LM)
    straight = train(*_data(tiny_corpus), SPEC, recipe, tmp_path / "straight", seed=0, init=trained)
    with pytest.raises(Preempted):  # 24 utterances / batch 4: killed in the second epoch
        train(*_data(tiny_corpus), SPEC, recipe, tmp_path / "resumed", seed=0, init=trained, stop=StopAfterSteps(8))
    resumed = train(*_data(tiny_corpus), SPEC, recipe, tmp_path / "resumed", seed=0, init=trained)
    a, b = torch.load(straight)["model"], torch.load(resumed)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # it started from the trained weights, not from scratch: the first loss is that of a trained model
    from_scratch = train(*_data(tiny_corpus), SPEC, recipe, tmp_path / "scratch", seed=0)
    tuned_loss = pd.read_csv(tmp_path / "straight" / "history.csv")["loss"]
    assert tuned_loss.iloc[0] < pd.read_csv(from_scratch.parent / "history.csv")["loss"].iloc[0]
    history = pd.read_csv(tmp_path / "straight" / "history.csv")
    assert list(history["margin"]) == [0.5, 0.5]
    info = json.loads((tmp_path / "straight" / "spec.json").read_text())
    assert info["init"] == str(trained) and info["epochs"] == 2 and info["recipe"]["crop_frames"] == 80
    base = torch.load(trained)
    assert set(base) >= {"spec", "model", "head", "n_classes"}  # the head fine-tuning starts from
    assert any(not torch.equal(base["model"][k], a[k]) for k in a)


def test_a_fine_tuning_killed_by_sigkill_resumes_from_its_checkpoint(tiny_corpus: Path, trained: Path,
                                                                   tmp_path: Path) -> None:
    lm = LM | {"samples_per_epoch": 120, "epochs": 2}
    training = TRAINING | {"checkpoint_minutes": 1e-9}  # checkpoint after every step
    features, manifest = _data(tiny_corpus)
    straight = train(features, manifest, SPEC, large_margin_recipe(training, lm), tmp_path / "straight", seed=0,
                     init=trained)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "svbench.cli", "train", "--features", str(features), "--manifest", str(manifest),
           "--arch", json.dumps(SPEC.to_dict()), "--recipe", json.dumps(training), "--large-margin", json.dumps(lm),
           "--init", str(trained), "--out", str(out)]
    status = kill_at_checkpoint(cmd, out / "checkpoint.pt", lambda c: c["epoch"] == 1 and c["step"] >= 5,
                                signal.SIGKILL)
    assert status == -signal.SIGKILL and not (out / "model.pt").exists()
    # the resumed job reads its checkpoint, not the trained model again
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = torch.load(straight)["model"], torch.load(out / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_rerun_after_the_backbone_was_retrained_fine_tunes_the_new_backbone(tiny_corpus: Path, trained: Path,
                                                                          tmp_path: Path) -> None:
    """Snakemake reruns the fine-tuning when its backbone changed, deleting only the declared outputs: the old
    run's finished checkpoint must not be resumed (it would hand back the old fine-tuned weights)."""
    recipe = large_margin_recipe(TRAINING, LM)
    backbone = tmp_path / "base" / "model.pt"
    backbone.parent.mkdir()
    backbone.write_bytes(trained.read_bytes())
    out = tmp_path / "tuned"
    old = torch.load(train(*_data(tiny_corpus), SPEC, recipe, out, seed=0, init=backbone))["model"]
    retrained = torch.load(backbone)
    retrained["model"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in retrained["model"].items()}
    torch.save(retrained, backbone)
    for name in ("model.pt", "history.csv", "spec.json"):  # the declared outputs
        (out / name).unlink()
    new = torch.load(train(*_data(tiny_corpus), SPEC, recipe, out, seed=0, init=backbone))["model"]
    fresh = torch.load(train(*_data(tiny_corpus), SPEC, recipe, tmp_path / "fresh", seed=0, init=backbone))["model"]
    assert all(torch.equal(new[k], fresh[k]) for k in new)
    assert any(not torch.equal(new[k], old[k]) for k in new)
    assert (out / "checkpoint.stale.pt").exists()  # set aside, not deleted
    assert len(pd.read_csv(out / "history.csv")) == 2


def test_fine_tuning_refuses_a_model_it_cannot_start_from(tiny_corpus: Path, trained: Path, tmp_path: Path) -> None:
    recipe = large_margin_recipe(TRAINING, LM)
    other = ArchSpec(name="tiny", block="basic", stages=(1, 1, 1, 2), width=4, embedding=32)
    with pytest.raises(UserError, match="another architecture"):
        train(*_data(tiny_corpus), other, recipe, tmp_path / "a", init=trained)
    old = tmp_path / "old.pt"  # a model.pt of an svbench that kept no head
    torch.save({k: v for k, v in torch.load(trained).items() if k != "head"}, old)
    with pytest.raises(UserError, match="old.pt: holds no margin head"):
        train(*_data(tiny_corpus), SPEC, recipe, tmp_path / "b", init=old)
    torch.save({"spec": SPEC.to_dict()}, tmp_path / "nothing.pt")
    with pytest.raises(UserError, match="nothing.pt: not an svbench model.pt"):
        train(*_data(tiny_corpus), SPEC, recipe, tmp_path / "e", init=tmp_path / "nothing.pt")
    wrong = torch.load(trained)
    wrong["head"] = {"weight": torch.zeros(3, 32)}  # the right class count on record, weights of another shape
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(UserError, match="wrong.pt: its weights do not fit"):
        train(*_data(tiny_corpus), SPEC, recipe, tmp_path / "f", init=tmp_path / "wrong.pt")
    with pytest.raises(UserError, match="not a readable svbench model"):
        train(*_data(tiny_corpus), SPEC, recipe, tmp_path / "g", init=tmp_path)  # a folder
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(UserError, match="empty.pt: not a readable svbench model"):
        train(*_data(tiny_corpus), SPEC, recipe, tmp_path / "c", init=tmp_path / "empty.pt")
    with pytest.raises(UserError, match="no trained model to fine-tune"):
        train(*_data(tiny_corpus), SPEC, recipe, tmp_path / "d", init=tmp_path / "absent.pt")


def test_the_cli_needs_init_for_fine_tuning(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "svbench.cli", "train", "--features", str(tmp_path),
                          "--manifest", str(tmp_path / "m.tsv"), "--arch", json.dumps(SPEC.to_dict()),
                          "--large-margin", "{}", "--out", str(tmp_path / "o")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and "--large-margin: fine-tuning needs --init" in run.stderr


def test_fine_tuning_into_the_trained_models_own_folder_is_refused(tiny_corpus: Path, trained: Path,
                                                                    tmp_path: Path) -> None:
    """`--out` holding the `--init` model would overwrite the trained model, its history and spec, and set its
    checkpoints aside as stale (issue 25, class 5): refused, the folder untouched, however the path is spelled."""
    copy = tmp_path / "A" / "seed0"
    copy.mkdir(parents=True)
    (copy / "model.pt").write_bytes(trained.read_bytes())
    (copy / "history.csv").write_text("epoch,loss\n1,1.0\n")
    (tmp_path / "link").symlink_to(tmp_path / "A")
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    recipe = large_margin_recipe(TRAINING, LM)
    for out in (copy, tmp_path / "A" / "." / "seed0", tmp_path / "link" / "seed0"):
        with pytest.raises(UserError, match="--out .* holds the --init model"):
            train(*_data(tiny_corpus), SPEC, recipe, out, init=copy / "model.pt")
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before
