"""The training package's parts on their own: stop policies, the checkpointer's clock, one optimiser step,
and the checkpoint's file format."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from svbench.models import AAMSoftmax, ArchSpec, build
from svbench.training import (
    CHECKPOINT_KEYS,
    Checkpointer,
    Preempted,
    Recipe,
    StopAfterSteps,
    StopOnSignal,
    TrainingModel,
    grad_scaler,
    train,
    train_step,
)

SPEC = ArchSpec(name="tiny", block="basic", stages=(1, 1, 1, 1), width=4, embedding=32)


def test_stop_on_signal_flags_sigterm_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopOnSignal() as stop:
        assert not stop(0)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between bytecodes of the main thread
        assert stop(0) and stop.received == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_after_steps_counts_this_runs_steps() -> None:
    stop = StopAfterSteps(3)
    assert [stop(n) for n in range(5)] == [False, False, False, True, True]


def test_checkpointer_is_due_at_epoch_ends_and_after_its_period(tmp_path: Path) -> None:
    never = Checkpointer(tmp_path, minutes=0, lead=True)  # 0: only at epoch ends
    assert not never.due() and never.due(epoch_end=True)
    often = Checkpointer(tmp_path, minutes=1e-9, lead=True)
    assert often.due()
    rarely = Checkpointer(tmp_path, minutes=60, lead=True)
    assert not rarely.due()
    rarely.save({"x": 1})
    assert torch.load(tmp_path / "checkpoint.pt") == {"x": 1} and not rarely.due()
    follower = Checkpointer(tmp_path / "other", minutes=60, lead=False)
    follower.save({"x": 2})  # only the lead rank writes
    assert not (tmp_path / "other").exists()


def test_train_step_updates_the_weights_and_reports_the_batch() -> None:
    torch.manual_seed(0)
    backbone = build(SPEC)
    net = TrainingModel(backbone, AAMSoftmax(SPEC.embedding, 5, scale=32.0, margin=0.2), amp_dtype=None)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in backbone.parameters()]
    feats, labels = torch.randn(6, 40, 80), torch.tensor([0, 1, 2, 3, 4, 0])
    result = train_step(net, optimiser, grad_scaler(torch.device("cpu"), None), feats, labels)
    assert result.samples == 6 and 0 <= result.correct <= 6 and result.loss > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, backbone.parameters(), strict=True))


def test_checkpoint_keeps_its_file_format(tiny_corpus: Path, tmp_path: Path) -> None:
    """Resume reads these keys, and ``running`` as a plain dict: checkpoints written before stay resumable."""
    recipe = Recipe(epochs=2, batch_size=4, crop_frames=40, threads=1, checkpoint_minutes=0)
    with pytest.raises(Preempted, match="stopped at epoch 0 step 2"):
        train(tiny_corpus / "features" / "train", tiny_corpus / "corpus" / "train.tsv", SPEC, recipe, tmp_path,
              stop=StopAfterSteps(2))
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert set(CHECKPOINT_KEYS) <= set(ckpt) and (ckpt["epoch"], ckpt["step"]) == (0, 2)
    assert set(ckpt["running"]) == {"loss", "correct", "seen", "seconds", "wait"}
    assert ckpt["running"]["seen"] == 8
    assert not (tmp_path / "checkpoint.prev.pt").exists()  # the first checkpoint has no predecessor
