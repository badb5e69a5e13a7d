"""The training loop: AAM-softmax on random crops, SGD, warm-up + exponential LR, checkpoints, resume.

``train_step`` is one optimiser step, ``run_epoch`` one epoch (from a resumed step), ``train`` the whole
run. A job killed at any moment resumes from its last checkpoint and finishes with the same weights as one
that never stopped (on CPU with deterministic kernels). A stop policy (default: SIGTERM) makes the loop
checkpoint at the next step and raise ``Preempted``; the CLI then exits with 143 so the job is requeued.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from svbench.errors import UserError
from svbench.fileio import write_text_atomic
from svbench.instrument.markers import phase
from svbench.instrument.orphans import die_with_launcher
from svbench.layout import MODEL, SPEC
from svbench.models import ArchSpec, summarize
from svbench.models.loading import device_sync, resolve_device

from .checkpoint import HEAD_PREFIX, Checkpointer, average_state, save_atomic
from .data import epoch_order, load_training_set, rank_batches
from .distributed import any_rank, dist_env, process_group, replica_digests, sum_over_ranks
from .job import TrainingJob, build_job
from .recipe import Recipe
from .state import RunningStats, StepResult, TrainState
from .stop import Preempted, StopOnSignal, StopPolicy

log = logging.getLogger("svbench.training")

PROGRESS_S = 60.0  # a progress line at least this often inside an epoch (VoxCeleb epochs take an hour)


def train_step(net: torch.nn.Module, optimiser: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               feats: torch.Tensor, labels: torch.Tensor) -> StepResult:
    """One optimiser step on a batch already on the device: forward (autocast inside ``net``), backward through
    the gradient scaler, update."""
    logits = net(feats, labels)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    optimiser.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimiser)
    scaler.update()
    return StepResult(float(loss.detach()), int((logits.argmax(1) == labels).sum()), len(labels))


def _set_lr(optimiser: torch.optim.Optimizer, lr: float) -> None:
    for group in optimiser.param_groups:
        group["lr"] = lr


class ProgressLog:
    """A progress line at least every ``PROGRESS_S`` inside an epoch (lead rank)."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def __call__(self, job: TrainingJob, state: TrainState, now: float) -> None:
        if not job.lead or now - self._last < PROGRESS_S:
            return
        self._last = now
        running = state.running
        log.info("epoch %d/%d step %d/%d loss %.3f acc %.3f %.0f samples/s", state.epoch + 1, job.recipe.epochs,
                 state.step, job.steps_per_epoch, running.mean_loss(), running.accuracy(), running.samples_per_s())


def _reduce_running(job: TrainingJob, state: TrainState) -> None:
    """Sum the loss/accuracy counters over ranks (rank 0 then holds the totals, the others zero)."""
    if job.world == 1:
        return
    state.running.set_counts(sum_over_ranks(state.running.counts(), job.world, job.device))
    if not job.lead:
        state.running.clear_counts()


def _checkpoint_or_stop(job: TrainingJob, state: TrainState, stop: StopPolicy) -> None:
    """After a step: checkpoint when a stop is requested or a periodic checkpoint is due; raise on a stop."""
    wanted, due = any_rank((stop(state.steps_run), job.checkpointer.due()), job.world, job.device)
    if wanted or due:
        _reduce_running(job, state)
        job.checkpointer.save(job.payload(state))
    if wanted:
        raise Preempted(f"stopped at epoch {state.epoch} step {state.step}; checkpoint in {job.checkpointer.current}")


def _epoch_loader(job: TrainingJob, state: TrainState) -> DataLoader:
    """This rank's batches of the current epoch from the current step on."""
    order = epoch_order(job.data.utterances, job.steps_per_epoch * job.global_batch, job.seed, state.epoch)
    batches = rank_batches(order, job.global_batch, job.rank, job.world)
    return DataLoader(job.data.dataset, batch_sampler=batches[state.step:], num_workers=job.recipe.num_workers,
                      pin_memory=job.device.type == "cuda")


def _end_epoch(job: TrainingJob, state: TrainState, lr: float, margin: float) -> None:
    """The epoch's history row, the next position, the epoch's weights (for averaging) and its checkpoint."""
    _reduce_running(job, state)
    running = state.running
    seconds = running.elapsed
    state.history.append({
        "epoch": state.epoch + 1, "loss": running.mean_loss(), "accuracy": running.accuracy(), "lr": lr,
        "margin": margin, "seconds": round(seconds, 3), "samples_per_s": running.samples_per_s(),
        "data_wait_share": running.wait / max(seconds, 1e-9),
    })
    if job.lead:
        log.info("epoch %d/%d loss %.3f acc %.3f lr %.4f margin %.2f %.1f s", state.epoch + 1, job.recipe.epochs,
                 running.mean_loss(), running.accuracy(), lr, margin, seconds)
    state.epoch, state.step, state.running = state.epoch + 1, 0, RunningStats()
    if job.lead and job.recipe.average_last > 1:
        job.checkpointer.keep_epoch_weights(state.epoch, job.model, job.head, job.recipe.average_last)
    if job.checkpointer.due(epoch_end=True):
        job.checkpointer.save(job.payload(state))
    job.checkpointer.write_history(state.history)


def run_epoch(job: TrainingJob, state: TrainState, stop: StopPolicy, progress: ProgressLog | None = None) -> None:
    """Train the epoch ``state.epoch`` from ``state.step`` to its end; ``Preempted`` when ``stop`` says so."""
    progress = progress or ProgressLog()
    margin = job.recipe.margin_at(state.epoch)
    job.head.set_margin(margin)
    loader = _epoch_loader(job, state)
    job.net.train()
    lr = job.lr_at(state)  # the epoch's last rate, if resumed at its end
    with phase("epoch", state.epoch, sync=device_sync(job.device)):
        waiting_since = time.monotonic()
        for feats, labels in loader:
            got_batch = time.monotonic()
            state.running.wait += got_batch - waiting_since
            lr = job.lr_at(state)
            _set_lr(job.optimiser, lr)
            result = train_step(job.net, job.optimiser, job.scaler, feats.to(job.device, non_blocking=True),
                                labels.to(job.device, non_blocking=True))
            state.running.add(result)
            state.step += 1
            state.steps_run += 1
            waiting_since = time.monotonic()
            state.running.seconds += waiting_since - got_batch
            progress(job, state, waiting_since)
            _checkpoint_or_stop(job, state, stop)
    _end_epoch(job, state, lr, margin)


def _write_model(job: TrainingJob, out_dir: Path, digests: list[str], init: Path | None) -> Path:
    """``spec.json`` and ``model.pt``: the mean of the last ``average_last`` epochs' backbone and margin head (the
    head is what fine-tuning starts from; embeddings use the backbone alone), else the last."""
    recipe, data = job.recipe, job.data
    averaged = list(range(max(recipe.epochs - recipe.average_last + 1, 1), recipe.epochs + 1))
    weights, head = job.model.state_dict(), job.head.state_dict()
    if len(averaged) > 1:  # backbone and head, as WeSpeaker averages the whole model
        mean = average_state([job.checkpointer.epoch_weights(epoch) for epoch in averaged])
        weights = {k: v for k, v in mean.items() if not k.startswith(HEAD_PREFIX)}
        # epoch files of a run begun before they kept the head: the last epoch's head
        head = {k[len(HEAD_PREFIX):]: v for k, v in mean.items() if k.startswith(HEAD_PREFIX)} or head
        log.info("model.pt: mean of the weights after epochs %d..%d", averaged[0], averaged[-1])
    info = summarize(job.spec) | {
        "seed": job.seed, "n_classes": data.n_classes, "speakers": data.speakers,
        "train_utterances": data.utterances, "epochs": recipe.epochs,
        "samples_per_epoch": job.steps_per_epoch * job.global_batch, "world_size": job.world,
        "averaged_epochs": averaged, "recipe": asdict(recipe), "device": str(job.device),
        "amp": str(job.amp_dtype).removeprefix("torch.") if job.amp_dtype else "off",
        "final_weights_sha256_per_rank": digests, "init": None if init is None else str(init)}
    write_text_atomic(out_dir / SPEC, json.dumps(info, indent=2, default=str))
    save_atomic({"spec": job.spec.to_dict(), "model": weights, "head": head,
                 "n_classes": data.n_classes}, out_dir / MODEL)
    return out_dir / MODEL


def _configure_torch(recipe: Recipe, seed: int, device: torch.device) -> None:
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(seed)
    if device.type == "cuda" and recipe.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True  # fixed crop size: the fastest kernels are found once


LAUNCHED_BY_TORCHRUN = "TORCHELASTIC_RUN_ID"  # set by torchrun in every worker


def train(features: Path, manifest: Path, spec: ArchSpec, recipe: Recipe, out_dir: Path, seed: int = 0,
          stop: StopPolicy | None = None, init: Path | None = None) -> Path:
    """Train one architecture; resumes from ``out_dir/checkpoint.pt`` (or ``checkpoint.prev.pt``) if present.

    Writes ``checkpoint.pt`` (every epoch, every ``checkpoint_minutes`` and on a stop; the one before is kept
    as ``checkpoint.prev.pt``, resumed from when ``checkpoint.pt`` is damaged), ``history.csv``, ``spec.json``
    (with params and MACs of the built model) and finally ``model.pt`` (the mean of the last ``average_last``
    epochs' weights, kept in ``epochs/``). ``stop`` decides after every step whether to checkpoint and raise
    ``Preempted`` (default: on SIGTERM). Under ``torchrun`` or ``srun`` with several processes it trains with
    DDP and only rank 0 writes. With ``init`` (a trained ``model.pt``), a fresh start takes its backbone and
    margin head: large-margin fine-tuning with :func:`svbench.training.recipe.large_margin_recipe`.
    """
    if init is not None and Path(init).resolve().parent == Path(out_dir).resolve():
        # it would overwrite the trained model, its history and spec, and set its checkpoints aside as stale
        raise UserError(f"--out {out_dir} holds the --init model {init}: a fine-tuning writes a model of its own; "
                        "give it another folder (the workflow's is results/models/<arch>+lm/seed<n>)")
    rank, world, local_rank = dist_env()
    if LAUNCHED_BY_TORCHRUN in os.environ:
        # torchrun puts each worker in a session of its own: without this, a launcher killed with its node's
        # monitor would leave this rank training on, with the other nodes
        die_with_launcher()
    device = resolve_device(recipe.device, local_rank)
    out_dir = Path(out_dir)
    with process_group(rank, world, device, recipe.collective_timeout_s):
        if rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
        if recipe.world_size != world:
            log.warning("training.nodes × processes is %d × %d but this job has %d process(es)", recipe.nodes,
                        recipe.processes, world)
        recipe.rank_batch(world)  # a layout that does not divide the global batch stops here, on every rank
        _configure_torch(recipe, seed, device)
        data = load_training_set(Path(features), Path(manifest), recipe, seed)
        job = build_job(spec, recipe, seed, data, (rank, world), device,
                        Checkpointer(out_dir, recipe.checkpoint_minutes, lead=rank == 0))
        state = job.resume(init)
        progress = ProgressLog()
        with stop or StopOnSignal() as policy:
            while state.epoch < recipe.epochs:
                run_epoch(job, state, policy, progress)
        digests = replica_digests(job.model, job.head, world)
        return _write_model(job, out_dir, digests, init) if job.lead else out_dir / MODEL
