"""DistributedDataParallel on CPU with gloo: two processes, launched by torchrun and by torch.multiprocessing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
import torch.multiprocessing as mp

from svbench.models import ArchSpec
from svbench.training import Preempted, Recipe, train

BIN = Path(sys.executable).parent
SPEC = ArchSpec(name="tiny", block="basic", stages=(1, 1, 1, 1), width=4, embedding=32)
# 24 utterances, 2 processes x batch 4: 3 global steps per epoch
RECIPE = Recipe(epochs=3, batch_size=4, crop_frames=40, lr=0.1, final_lr=0.01, warmup_epochs=1,
                margin=0.2, margin_start_epoch=1, margin_end_epoch=2, threads=1, processes=2, device="cpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, corpus: Path, out: Path, stop_after: int | None) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    try:
        train(corpus / "features" / "train", corpus / "corpus" / "train.tsv", SPEC, RECIPE, out, seed=0,
              stop_after_steps=stop_after)
    except Preempted:
        pass


def _spawn(corpus: Path, out: Path, stop_after: int | None = None) -> None:
    mp.spawn(_worker, args=(2, _free_port(), corpus, out, stop_after), nprocs=2, join=True)


def test_two_processes_train_identical_replicas_and_resume(tiny_corpus: Path, tmp_path: Path) -> None:
    # 1. torchrun + the CLI, as the workflow launches it when training.processes > 1
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    run = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "--no-python", "svbench", "train",
         "--features", str(tiny_corpus / "features" / "train"), "--manifest", str(tiny_corpus / "corpus" / "train.tsv"),
         "--arch", json.dumps(SPEC.to_dict()), "--recipe", json.dumps({k: v for k, v in asdict(RECIPE).items()
                                                                         if k != "extra"}),
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
