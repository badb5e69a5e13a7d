"""DistributedDataParallel on CPU with gloo: two processes, launched by torchrun and by torch.multiprocessing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch
import torch.multiprocessing as mp
from support import BIN, ddp_worker
from support import DDP_RECIPE as RECIPE
from support import DDP_SPEC as SPEC


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(corpus: Path, out: Path, stop_after: int | None = None, recipe: object = None,
           init: Path | None = None) -> None:
    mp.spawn(ddp_worker, args=(2, _free_port(), corpus, out, stop_after, recipe, init), nprocs=2, join=True)


def test_two_processes_train_identical_replicas_and_resume(tiny_corpus: Path, tmp_path: Path) -> None:
    # 1. torchrun + the CLI, as the workflow launches it when training.processes > 1
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    run = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "--no-python", "svbench", "train",
         "--features", str(tiny_corpus / "features" / "train"), "--manifest", str(tiny_corpus / "corpus" / "train.tsv"),
         "--arch", json.dumps(SPEC.to_dict()), "--recipe", json.dumps(asdict(RECIPE)),
         "--seed", "0", "--out", str(tmp_path / "torchrun")],
        env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    info = json.loads((tmp_path / "torchrun" / "spec.json").read_text())
    assert info["world_size"] == 2 and info["samples_per_epoch"] == 24
    digests = info["final_weights_sha256_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]  # both ranks ended with identical weights
    history = pd.read_csv(tmp_path / "torchrun" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]

    # 2. killed in epoch 2 and restarted (torch.multiprocessing): the same weights as the uninterrupted run
    _spawn(tiny_corpus, tmp_path / "resumed", stop_after=4)
    assert not (tmp_path / "resumed" / "model.pt").exists()
    _spawn(tiny_corpus, tmp_path / "resumed")
    a = torch.load(tmp_path / "torchrun" / "model.pt")["model"]
    b = torch.load(tmp_path / "resumed" / "model.pt")["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    resumed = pd.read_csv(tmp_path / "resumed" / "history.csv")
    assert resumed["loss"].tolist() == history["loss"].tolist() or \
        (resumed["loss"] - history["loss"]).abs().max() < 1e-6


def test_two_processes_fine_tune_from_one_model_and_resume(tiny_corpus: Path, tmp_path: Path) -> None:
    """Large-margin fine-tuning with two ranks: both start from the same trained model, end identical, and a
    stopped run resumes from its checkpoint (not from the model again) to the same weights."""
    from svbench.training import large_margin_recipe, train

    data = (tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv")
    base = train(*data, SPEC, replace(RECIPE, processes=1, epochs=1), tmp_path / "b")
    recipe = large_margin_recipe(asdict(RECIPE), {"epochs": 2, "batch_size": 8, "crop_frames": 60, "lr": 0.01})
    _spawn(tiny_corpus, tmp_path / "straight", recipe=recipe, init=base)
    digests = json.loads((tmp_path / "straight" / "spec.json").read_text())["final_weights_sha256_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]
    _spawn(tiny_corpus, tmp_path / "resumed", stop_after=4, recipe=recipe, init=base)  # in the second epoch
    assert not (tmp_path / "resumed" / "model.pt").exists()
    _spawn(tiny_corpus, tmp_path / "resumed", recipe=recipe, init=base)
    a = torch.load(tmp_path / "straight" / "model.pt")["model"]
    b = torch.load(tmp_path / "resumed" / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], torch.load(base)["model"][k]) for k in a)  # it trained
