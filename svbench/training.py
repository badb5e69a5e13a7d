"""The training loop: AAM-softmax on random crops, SGD, warm-up + exponential LR, checkpoints, resume.

Determinism by construction: the sample order of epoch e is a permutation seeded by (seed, e) and
the crop of sample i in epoch e is drawn from a generator seeded by (seed, e, i). A checkpoint
therefore only needs the weights, the optimiser and the position (epoch, step): a job killed at
any moment resumes from its last checkpoint and finishes with the same weights as one that never
stopped (on CPU with deterministic kernels). SIGTERM (SLURM time limit, preemption) makes the loop
checkpoint at the next step and exit with status 143 so the job can be requeued.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from svbench.corpus.manifest import read_manifest
from svbench.energy.markers import phase
from svbench.features import FeatureStore
from svbench.models import AAMSoftmax, ArchSpec, build, summarize

log = logging.getLogger("svbench.training")

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "lr", "margin", "seconds", "samples_per_s", "data_wait_share"]


@dataclass
class Recipe:
    """Training hyper-parameters (config section ``training``); defaults follow WeSpeaker's recipe."""

    epochs: int = 150
    batch_size: int = 128
    crop_frames: int = 200
    samples_per_epoch: int | None = None  # None: one crop per training utterance
    lr: float = 0.1
    final_lr: float = 5e-5
    warmup_epochs: int = 6
    scale_lr_by_batch: bool = True  # lr × global batch / 64
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    aam_scale: float = 32.0
    margin: float = 0.2
    margin_start_epoch: int = 20
    margin_end_epoch: int = 40
    num_workers: int = 0
    device: str = "auto"
    threads: int | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict, where: str = "training") -> Recipe:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config key {where}.{unknown[0]}: unknown training option "
                             f"(known: {', '.join(sorted(known))})")
        return cls(**d)

    def peak_lr(self) -> float:
        return self.lr * (self.batch_size / 64 if self.scale_lr_by_batch else 1.0)

    def lr_at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """Linear warm-up to the peak, then exponential decay to ``final_lr`` at the last step."""
        t = epoch + step / steps_per_epoch
        peak = self.peak_lr()
        if t < self.warmup_epochs:
            return peak * (t + 1 / steps_per_epoch) / self.warmup_epochs
        span = max(self.epochs - self.warmup_epochs, 1e-9)
        frac = min((t - self.warmup_epochs) / span, 1.0)
        return peak * (self.final_lr / peak) ** frac

    def margin_at(self, epoch: int) -> float:
        """0 until ``margin_start_epoch``, then a linear ramp reaching ``margin`` at ``margin_end_epoch``."""
        if epoch < self.margin_start_epoch:
            return 0.0
        if epoch >= self.margin_end_epoch:
            return self.margin
        ramp = self.margin_end_epoch - self.margin_start_epoch + 1
        return self.margin * (epoch - self.margin_start_epoch + 1) / ramp


class CropDataset(Dataset):
    """Random fixed-length crops; item i of epoch e always gives the same crop for a seed."""

    def __init__(self, store: FeatureStore, utts: list[str], labels: list[int], frames: int, seed: int) -> None:
        self.store, self.utts, self.labels, self.frames, self.seed = store, utts, labels, frames, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, i])
        return torch.from_numpy(self.store.crop(self.utts[i], self.frames, rng)), self.labels[i]


def epoch_order(n_utts: int, samples: int, seed: int, epoch: int) -> list[tuple[int, int]]:
    """The (epoch, utterance index) keys of one epoch, in order."""
    rng = np.random.default_rng([seed, epoch, 1_000_003])
    reps = -(-samples // n_utts)
    order = np.concatenate([rng.permutation(n_utts) for _ in range(reps)])[:samples]
    return [(epoch, int(i)) for i in order]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _save_atomic(obj: object, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class _StopRequested:
    """Turns SIGTERM into a flag the loop checks between steps."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __enter__(self) -> _StopRequested:
        self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        self.signum = signum
        log.warning("SIGTERM received: checkpointing at the next step")

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._old)


class Preempted(Exception):
    """Training stopped on request after writing a checkpoint; the job should be resumed."""


def train(features: Path, manifest: Path, spec: ArchSpec, recipe: Recipe, out_dir: Path, seed: int = 0,
          stop_after_steps: int | None = None) -> Path:
    """Train one architecture; resumes from ``out_dir/checkpoint.pt`` if present.

    Writes ``checkpoint.pt`` (every epoch, and on SIGTERM), ``history.csv``, ``spec.json`` (with params
    and MACs of the built model) and finally ``model.pt``. ``stop_after_steps`` simulates a kill (tests).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    torch.manual_seed(seed)
    device = _device(recipe.device)
    store = FeatureStore(features)
    utts = read_manifest(manifest)
    speakers = sorted({u.speaker for u in utts})
    speaker_index = {s: k for k, s in enumerate(speakers)}
    missing = [u.utt for u in utts if u.utt not in store]
    if missing:
        raise KeyError(f"{features}: {len(missing)} training utterances have no features, e.g. {missing[0]!r}")
    ids = [u.utt for u in utts]
    labels = [speaker_index[u.speaker] for u in utts]
    samples = recipe.samples_per_epoch or len(ids)
    steps_per_epoch = max(samples // recipe.batch_size, 1)

    model = build(spec).to(device)
    head = AAMSoftmax(spec.embedding, len(speakers), scale=recipe.aam_scale, margin=0.0).to(device)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimiser = torch.optim.SGD(
        [{"params": decay, "weight_decay": recipe.weight_decay},
         {"params": no_decay, "weight_decay": 0.0},
         {"params": head.parameters(), "weight_decay": 0.0}],  # no decay on the margin head's weights
        lr=recipe.peak_lr(), momentum=recipe.momentum, nesterov=recipe.nesterov)

    ckpt_path = out_dir / "checkpoint.pt"
    epoch, step, history = 0, 0, []
    running = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0, "wait": 0.0}
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt["spec"] != spec.to_dict() or ckpt["n_classes"] != len(speakers):
            raise ValueError(f"{ckpt_path}: checkpoint is for another architecture or corpus; remove it to restart")
        model.load_state_dict(ckpt["model"])
        head.load_state_dict(ckpt["head"])
        optimiser.load_state_dict(ckpt["optimiser"])
        epoch, step, history, running = ckpt["epoch"], ckpt["step"], ckpt["history"], ckpt["running"]
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("resumed from %s at epoch %d step %d", ckpt_path, epoch, step)

    def checkpoint() -> None:
        _save_atomic({"spec": spec.to_dict(), "n_classes": len(speakers), "model": model.state_dict(),
                      "head": head.state_dict(), "optimiser": optimiser.state_dict(), "epoch": epoch, "step": step,
                      "history": history, "running": running, "torch_rng": torch.get_rng_state(),
                      "recipe": asdict(recipe), "seed": seed}, ckpt_path)

    dataset = CropDataset(store, ids, labels, recipe.crop_frames, seed)
    steps_done = 0
    with _StopRequested() as stop:
        while epoch < recipe.epochs:
            margin = recipe.margin_at(epoch)
            head.set_margin(margin)
            order = epoch_order(len(ids), steps_per_epoch * recipe.batch_size, seed, epoch)
            batches = [order[k: k + recipe.batch_size] for k in range(0, len(order), recipe.batch_size)]
            loader = DataLoader(dataset, batch_sampler=batches[step:], num_workers=recipe.num_workers)
            model.train()
            head.train()
            lr = recipe.lr_at(epoch, min(step, steps_per_epoch - 1), steps_per_epoch)  # if resumed at epoch end
            with phase("epoch", epoch):
                t_wait = time.monotonic()
                for x, y in loader:
                    t_got = time.monotonic()
                    running["wait"] += t_got - t_wait
                    lr = recipe.lr_at(epoch, step, steps_per_epoch)
                    for group in optimiser.param_groups:
                        group["lr"] = lr
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    logits = head(model(x), y)
                    loss = torch.nn.functional.cross_entropy(logits, y)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    running["loss"] += float(loss.detach()) * len(y)
                    running["correct"] += int((logits.argmax(1) == y).sum())
                    running["seen"] += len(y)
                    step += 1
                    steps_done += 1
                    t_wait = time.monotonic()
                    running["seconds"] += t_wait - t_got
                    if stop.signum is not None or (stop_after_steps is not None and steps_done >= stop_after_steps):
                        checkpoint()
                        raise Preempted(f"stopped at epoch {epoch} step {step}; checkpoint in {ckpt_path}")
            seconds = running["seconds"] + running["wait"]
            history.append({
                "epoch": epoch + 1, "loss": running["loss"] / max(running["seen"], 1),
                "accuracy": running["correct"] / max(running["seen"], 1), "lr": lr, "margin": margin,
                "seconds": round(seconds, 3), "samples_per_s": running["seen"] / max(seconds, 1e-9),
                "data_wait_share": running["wait"] / max(seconds, 1e-9),
            })
            log.info("epoch %d/%d loss %.3f acc %.3f lr %.4f margin %.2f %.1f s", epoch + 1, recipe.epochs,
                     history[-1]["loss"], history[-1]["accuracy"], lr, margin, seconds)
            epoch, step = epoch + 1, 0
            running = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0, "wait": 0.0}
            checkpoint()
            _write_history(out_dir / "history.csv", history)

    info = summarize(spec) | {"seed": seed, "n_classes": len(speakers), "train_utterances": len(ids),
                              "epochs": recipe.epochs, "samples_per_epoch": steps_per_epoch * recipe.batch_size,
                              "recipe": asdict(recipe), "device": str(device)}
    (out_dir / "spec.json").write_text(json.dumps(info, indent=2, default=str))
    _save_atomic({"spec": spec.to_dict(), "model": model.state_dict()}, out_dir / "model.pt")
    return out_dir / "model.pt"


def _write_history(path: Path, history: list[dict]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
                             for k, v in row.items()})
    os.replace(tmp, path)


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ArchSpec]:
    """The trained backbone (eval mode) and its spec from ``model.pt``."""
    blob = torch.load(path, map_location=device, weights_only=False)
    spec = ArchSpec.from_dict(blob["spec"], where=str(path))
    model = build(spec).to(device)
    model.load_state_dict(blob["model"])
    return model.eval(), spec
