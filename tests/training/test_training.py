import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from support import REPO, kill_at_checkpoint

from svbench.augment import Augmenter
from svbench.corpus.audio import write_wav
from svbench.corpus.manifest import read_manifest
from svbench.errors import UserError
from svbench.features import FeatureStore
from svbench.models import ArchSpec
from svbench.models.loading import load_model
from svbench.training import (
    CropDataset,
    Preempted,
    Recipe,
    StopAfterSteps,
    amp_mode,
    dist_env,
    epoch_order,
    rank_batches,
    train,
)

SPEC = ArchSpec(name="tiny", block="basic", stages=(1, 1, 1, 1), width=4, embedding=32)
RECIPE = Recipe(epochs=3, batch_size=4, crop_frames=40, lr=0.1, final_lr=0.01, warmup_epochs=1,
                margin=0.2, margin_start_epoch=1, margin_end_epoch=2, threads=1)


def test_recipe_schedules() -> None:
    r = Recipe(epochs=10, batch_size=128, lr=0.1, final_lr=1e-3, warmup_epochs=2, margin=0.2,
               margin_start_epoch=4, margin_end_epoch=6)
    assert r.peak_lr() == pytest.approx(0.2)  # scaled by batch / 64
    assert r.lr_at(0, 0, 10) < r.lr_at(1, 5, 10) < r.peak_lr() + 1e-12
    assert r.lr_at(2, 0, 10) == pytest.approx(0.2)
    assert r.lr_at(9, 10, 10) == pytest.approx(2e-3)  # the final rate scaled like the peak (WeSpeaker's lr_coeff)
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
        train(*args, tmp_path / "resumed", seed=0, stop=StopAfterSteps(8))
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
        train(*args, SPEC, RECIPE, tmp_path, stop=StopAfterSteps(1))
    other = ArchSpec(name="tiny", block="basic", stages=(1, 1, 1, 2), width=4, embedding=32)
    with pytest.raises(ValueError, match="checkpoint.pt"):
        train(*args, other, RECIPE, tmp_path)


def test_resuming_with_other_options_says_which(tiny_corpus: Path, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    args = (tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC)
    with pytest.raises(Preempted):
        train(*args, RECIPE, tmp_path, stop=StopAfterSteps(2))
    with caplog.at_level("WARNING", logger="svbench.training"):
        train(*args, dataclasses.replace(RECIPE, lr=0.05, threads=2), tmp_path)
    warned = [r.getMessage() for r in caplog.records if "other training options" in r.getMessage()]
    assert len(warned) == 1 and "lr 0.1 -> 0.05" in warned[0] and "threads" not in warned[0]


def test_kill_at_the_last_step_of_an_epoch_resumes(tiny_corpus: Path, tmp_path: Path) -> None:
    args = (tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC, RECIPE)
    with pytest.raises(Preempted):
        train(*args, tmp_path, stop=StopAfterSteps(6))  # 24 utterances / batch 4: the epoch's last step
    train(*args, tmp_path)
    assert len(pd.read_csv(tmp_path / "history.csv")) == 3


# --- recipe options, augmentation, averaging, AMP, process layout (issue 3) ---



def test_schema_training_keys_are_recipe_fields_of_their_type() -> None:
    from support import assert_schema_matches

    assert_schema_matches(Recipe, "training")  # the same options, each read from its own key, of its type
    keys = yaml.safe_load((REPO / "svbench/schemas/config.schema.yaml").read_text())["properties"]["training"][
        "properties"]
    for key in ("speed_perturb", "musan", "rir", "aug_prob", "average_last", "amp", "channels_last",
                "cudnn_benchmark", "processes"):
        assert key in keys, key
    voxceleb = yaml.safe_load((REPO / "config/voxceleb.yaml").read_text())["training"]
    Recipe.from_dict(voxceleb)  # every key of the study config is a recipe option


def test_recipe_rejects_bad_amp_and_average() -> None:
    with pytest.raises(ValueError, match="training.amp"):
        Recipe.from_dict({"amp": "fp8"})
    with pytest.raises(ValueError, match="training.average_last"):
        Recipe.from_dict({"average_last": 0})


def test_amp_on_cpu_is_off() -> None:
    for mode in ("auto", "bf16", "fp16", "off"):
        assert amp_mode(mode, torch.device("cpu")) is None


def test_lr_scales_with_the_global_batch_whatever_the_layout() -> None:
    one = Recipe(batch_size=512, lr=0.1, final_lr=5e-5, epochs=10, warmup_epochs=1)
    assert one.peak_lr() == pytest.approx(0.8)  # batch_size is the global batch: 512 / 64
    # WeSpeaker's ExponentialDecrease multiplies the whole curve by the ratio: the final rate too
    assert one.lr_at(9, 99, 100) == pytest.approx(5e-5 * 8, rel=0.05)
    # the paper's 4 nodes × 4 GPUs: the same global batch, the same rates, each process 32 samples
    spread = Recipe(batch_size=512, lr=0.1, final_lr=5e-5, epochs=10, warmup_epochs=1, nodes=4, processes=4)
    assert [spread.lr_at(e, 7, 100) for e in range(10)] == [one.lr_at(e, 7, 100) for e in range(10)]
    assert spread.rank_batch(spread.world_size) == 32
    unscaled = Recipe(batch_size=128, lr=0.1, final_lr=5e-5, epochs=10, warmup_epochs=1, scale_lr_by_batch=False)
    assert unscaled.lr_at(9, 99, 100) == pytest.approx(5e-5, rel=0.05)


def test_a_layout_that_does_not_divide_the_global_batch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"training.batch_size: 12 .*not divisible.* 8 processes"):
        Recipe(batch_size=12, nodes=2, processes=4)
    with pytest.raises(ValueError, match=r"large_margin.batch_size"):
        Recipe(batch_size=6, nodes=4, where="large_margin")


def test_rank_batches_cut_each_global_batch() -> None:
    order = list(range(20))
    both = rank_batches(order, 4, 0, 2), rank_batches(order, 4, 1, 2)
    assert both[0] == [[0, 1], [4, 5], [8, 9], [12, 13], [16, 17]]
    assert [a + b for a, b in zip(*both, strict=True)] == rank_batches(order, 4, 0, 1)


def test_dist_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_STEP_ID", "SLURM_PROCID", "SLURM_NTASKS",
                "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID"):
        monkeypatch.delenv(var, raising=False)
    assert dist_env() == (0, 1, 0)
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert dist_env() == (0, 1, 0)  # a batch script with 4 tasks but no srun step is one process
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    assert dist_env() == (3, 4, 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist_env() == (1, 2, 1)  # torchrun's variables win


@pytest.fixture(scope="module")
def noise_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny MUSAN-like folder (noise, speech, music) and a folder of two room impulse responses."""
    root = tmp_path_factory.mktemp("aug")
    rng = np.random.default_rng(0)
    for kind, seconds in (("noise", 0.5), ("speech", 3.0), ("music", 1.0)):
        (root / "musan" / kind / "sub").mkdir(parents=True)
        write_wav(root / "musan" / kind / "sub" / f"{kind}1.wav", 0.1 * rng.standard_normal(int(16000 * seconds)))
    (root / "rir").mkdir()
    for k in range(2):
        t = np.arange(4000) / 16000
        rir = rng.standard_normal(4000) * np.exp(-t / 0.05) * 0.5
        rir[0] = 1.0
        write_wav(root / "rir" / f"rir{k}.wav", rir / np.abs(rir).max())
    return root / "musan", root / "rir"


def test_missing_augmentation_path_names_the_key(tiny_corpus: Path, tmp_path: Path) -> None:
    args = (tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC)
    for key in ("musan", "rir"):
        recipe = dataclasses.replace(RECIPE, **{key: str(tmp_path / "nowhere")})
        with pytest.raises(ValueError, match=f"training.{key}: .*nowhere"):
            train(*args, recipe, tmp_path / key)


class _NoEffect(Augmenter):
    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return x


def test_augmented_crops_differ_from_clean_and_are_finite(tiny_corpus: Path, noise_dirs: tuple[Path, Path]) -> None:
    store = FeatureStore(tiny_corpus / "features" / "train")
    utts = read_manifest(tiny_corpus / "corpus" / "train.tsv")
    ids, wavs = [u.utt for u in utts], [u.path for u in utts]
    for musan, rir in ((noise_dirs[0], None), (None, noise_dirs[1]), noise_dirs):
        real = CropDataset(store, ids, [0] * len(ids), 40, 0, wavs=wavs, augmenter=Augmenter(musan, rir, 1.0))
        clean = CropDataset(store, ids, [0] * len(ids), 40, 0, wavs=wavs, augmenter=_NoEffect(musan, rir, 1.0))
        for i in range(4):
            (a, _), (c, _) = real[(0, i)], clean[(0, i)]  # same segment; only the augmentation differs
            assert a.shape == c.shape == (40, 80)
            assert torch.isfinite(a).all() and torch.isfinite(c).all()
            assert not torch.allclose(a, c, atol=1e-3)
    # speed perturbation: three classes per speaker, and the 1.0 speed still comes from the store
    sp = CropDataset(store, ids, [1] * len(ids), 40, 0, wavs=wavs, speed_perturb=True, n_speakers=6)
    labels = {sp[(0, i)][1] for i in range(len(ids))}
    assert labels == {1, 7, 13}
    assert all(torch.isfinite(sp[(0, i)][0]).all() for i in range(len(ids)))


def test_training_with_speed_perturbation_and_augmentation(tiny_corpus: Path, noise_dirs: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    recipe = dataclasses.replace(RECIPE, epochs=1, speed_perturb=True, musan=str(noise_dirs[0]),
                                 rir=str(noise_dirs[1]), num_workers=2)
    train(tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC, recipe, tmp_path)
    info = json.loads((tmp_path / "spec.json").read_text())
    assert info["n_classes"] == 3 * info["speakers"] == 18
    assert np.isfinite(pd.read_csv(tmp_path / "history.csv")["loss"]).all()


def test_average_last_checkpoints_and_resume(tiny_corpus: Path, tmp_path: Path) -> None:
    args = (tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC,
            dataclasses.replace(RECIPE, average_last=2))
    train(*args, tmp_path / "straight")
    kept = sorted(p.name for p in (tmp_path / "straight" / "epochs").iterdir())
    assert kept == ["epoch0002.pt", "epoch0003.pt"]  # only what the average needs
    e2, e3 = (torch.load(tmp_path / "straight" / "epochs" / k) for k in kept)
    blob = torch.load(tmp_path / "straight" / "model.pt")
    model = blob["model"]
    final = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    for key, value in model.items():
        if value.is_floating_point():
            assert torch.allclose(value, (e2[key] + e3[key]) / 2, atol=1e-6), key
    # the margin head is averaged too (WeSpeaker averages the whole model): fine-tuning starts from it
    assert torch.allclose(blob["head"]["weight"], (e2["head.weight"] + e3["head.weight"]) / 2, atol=1e-6)
    assert set(model) == {k for k in e2 if not k.startswith("head.")}
    assert any(not torch.equal(model[k], final[k]) for k in model)  # averaged, not the last weights
    assert json.loads((tmp_path / "straight" / "spec.json").read_text())["averaged_epochs"] == [2, 3]
    with pytest.raises(Preempted):  # killed in epoch 2: the kept epoch files survive the restart
        train(*args, tmp_path / "resumed", stop=StopAfterSteps(8))
    train(*args, tmp_path / "resumed")
    resumed = torch.load(tmp_path / "resumed" / "model.pt")["model"]
    assert all(torch.equal(model[k], resumed[k]) for k in model)


def test_averaging_keeps_only_what_every_epoch_file_holds(tmp_path: Path) -> None:
    """Epoch files of a run begun before they kept the head: the mean is of the backbone alone."""
    from svbench.training import average_state

    torch.save({"w": torch.ones(2)}, tmp_path / "old.pt")
    torch.save({"w": torch.zeros(2), "head.weight": torch.ones(3)}, tmp_path / "new.pt")
    mean = average_state([tmp_path / "old.pt", tmp_path / "new.pt"])
    assert set(mean) == {"w"} and torch.equal(mean["w"], torch.full((2,), 0.5))


def test_voxceleb_config_plans_one_training_and_one_fine_tuning_job_per_architecture_and_seed(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config/voxceleb.yaml").read_text())
    expected = len(config["grid"]) * len(config["seeds"])
    bin_dir = Path(sys.executable).parent
    run = subprocess.run([str(bin_dir / "snakemake"), "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                          "--configfile", str(REPO / "config/voxceleb.yaml")], capture_output=True, text=True,
                         timeout=300, env=os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    counts = dict(line.split()[:2] for line in run.stdout.splitlines()
                  if line.split()[:1] in (["train"], ["finetune"], ["embed"], ["score"]) and len(line.split()) == 2)
    assert int(counts["train"]) == expected == 17
    # large-margin fine-tuning is on: one job per architecture and seed, and each fine-tuned model is embedded
    # and scored like a trained one
    assert int(counts["finetune"]) == expected
    assert int(counts["embed"]) == int(counts["score"]) == 2 * expected
    assert "results/models/ResNet34+lm/seed0/model.pt" in run.stdout


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_mid_epoch_resumes_from_its_checkpoint(signum: int, tiny_corpus: Path, tmp_path: Path) -> None:
    """A job killed without warning resumes from its last periodic checkpoint to the same weights; one sent
    SIGTERM checkpoints at the next step and exits with 143 (the default stop policy), then resumes alike."""
    recipe = {"epochs": 3, "batch_size": 4, "crop_frames": 40, "lr": 0.1, "final_lr": 0.01, "warmup_epochs": 1,
              "margin": 0.2, "margin_start_epoch": 1, "margin_end_epoch": 2, "threads": 1,
              "samples_per_epoch": 400, "checkpoint_minutes": 1e-9}  # checkpoint after every step
    args = (tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC,
            Recipe.from_dict(dict(recipe)))
    train(*args, tmp_path / "straight", seed=0)

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "svbench.cli", "train", "--features", str(args[0]), "--manifest", str(args[1]),
           "--arch", json.dumps(SPEC.to_dict()), "--recipe", json.dumps(recipe), "--out", str(out)]
    # killed once a mid-epoch checkpoint of epoch 2 exists
    status = kill_at_checkpoint(cmd, out / "checkpoint.pt", lambda c: c["epoch"] == 1 and c["step"] >= 10, signum)
    assert status == (143 if signum == signal.SIGTERM else -signal.SIGKILL)
    assert not (out / "model.pt").exists()
    train(*args, out, seed=0)
    a = torch.load(tmp_path / "straight" / "model.pt")["model"]
    b = torch.load(out / "model.pt")["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- damaged checkpoints ---

def _cli_train(args: tuple, out: Path, recipe: Recipe) -> subprocess.CompletedProcess:
    fields = dataclasses.asdict(recipe)
    cmd = [sys.executable, "-m", "svbench.cli", "train", "--features", str(args[0]), "--manifest", str(args[1]),
           "--arch", json.dumps(args[2].to_dict()), "--recipe", json.dumps(fields), "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_truncated_checkpoint_falls_back_to_the_previous_one(tiny_corpus: Path, tmp_path: Path) -> None:
    args = (tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC, RECIPE)
    train(*args, tmp_path / "straight", seed=0)
    out = tmp_path / "resumed"
    with pytest.raises(Preempted):  # checkpoints at the end of epoch 1, then at the stop in epoch 2
        train(*args, out, seed=0, stop=StopAfterSteps(8))
    prev = torch.load(out / "checkpoint.prev.pt", weights_only=False)
    assert (prev["epoch"], prev["step"]) == (1, 0)
    ckpt = out / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # e.g. a node that died while writing
    run = _cli_train(args, out, RECIPE)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"{ckpt}: cannot load" in run.stderr and f"resuming from {out / 'checkpoint.prev.pt'}" in run.stderr
    a = torch.load(tmp_path / "straight" / "model.pt")["model"]
    b = torch.load(out / "model.pt")["model"]
    for key in a:  # resumed from the end of epoch 1: still the same weights
        assert torch.equal(a[key], b[key]), key
    assert len(pd.read_csv(out / "history.csv")) == 3
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):  # the damaged file is gone from the rotation
        torch.load(out / name, weights_only=False)


def test_no_loadable_checkpoint_is_one_error_naming_both(tiny_corpus: Path, tmp_path: Path) -> None:
    args = (tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC, RECIPE)
    with pytest.raises(Preempted):
        train(*args, tmp_path, stop=StopAfterSteps(8))
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (tmp_path / name).write_bytes(b"")
    run = _cli_train(args, tmp_path, RECIPE)
    assert run.returncode == 2, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("svbench: error: ") and "Traceback" not in run.stderr
    assert str(tmp_path / "checkpoint.pt") in last and str(tmp_path / "checkpoint.prev.pt") in last


def test_a_damaged_model_file_is_named(tmp_path: Path) -> None:
    from svbench.errors import UserError

    bad = tmp_path / "model.pt"
    bad.write_bytes(b"PK\x03\x04 not a whole torch file")
    with pytest.raises(UserError, match="model.pt: not a readable svbench model"):
        load_model(bad)
    with pytest.raises(UserError, match="no trained model"):
        load_model(tmp_path / "absent.pt")


def test_a_model_of_other_mel_bins_than_the_store_is_refused_before_training(tiny_corpus: Path,
                                                                               tmp_path: Path) -> None:
    """features.n_mels: 40 with a model built for 80 bins would fail deep in the first step (or train on
    the wrong input); the spec's n_mels and the store's are checked first, naming both."""
    spec = dataclasses.replace(SPEC, n_mels=40)  # the tiny store has the default 80
    with pytest.raises(UserError, match=r"tiny: the model takes 40 mel bins \(n_mels\), the feature store .* 80"):
        train(tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", spec, RECIPE, tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_the_workflows_specs_take_the_features_mel_bins() -> None:
    from svbench.study.grid import specs_from_grid

    specs = specs_from_grid([{"preset": "ResNet34"}, {"name": "s", "block": "basic", "stages": [1, 1, 1, 1]}],
                            n_mels=40)
    assert [spec.n_mels for spec in specs] == [40, 40]
    assert specs_from_grid([{"preset": "ResNet34"}])[0].n_mels == 80
