"""One training job's parts, built from its architecture and recipe: model, head, optimiser, scaler, data,
the process layout, and the checkpoint payload they save and restore."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from svbench.errors import UserError
from svbench.fileio import file_sha256
from svbench.models import AAMSoftmax, ArchSpec, build

from .checkpoint import Checkpointer
from .data import TrainingSet
from .distributed import check_same_position
from .model import TrainingModel, amp_mode, grad_scaler
from .recipe import Recipe
from .state import RunningStats, TrainState

log = logging.getLogger("svbench.training")


@dataclass
class TrainingJob:
    """Everything a training run holds besides its position (``TrainState``)."""

    spec: ArchSpec
    recipe: Recipe
    seed: int
    rank: int
    world: int
    device: torch.device
    amp_dtype: torch.dtype | None
    data: TrainingSet
    model: torch.nn.Module  # the backbone
    head: AAMSoftmax
    net: torch.nn.Module  # backbone + head, wrapped in DDP with several processes
    optimiser: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    checkpointer: Checkpointer
    init_sha256: str | None = None  # the trained model a fine-tuning started from (set by ``resume``)

    @property
    def lead(self) -> bool:
        """Rank 0: the one process that writes files and logs progress."""
        return self.rank == 0

    @property
    def global_batch(self) -> int:
        """The recipe's batch, whatever the layout: each of the ``world`` processes takes an equal slice."""
        return self.recipe.batch_size

    @property
    def steps_per_epoch(self) -> int:
        samples = self.recipe.samples_per_epoch or self.data.utterances
        return max(samples // self.global_batch, 1)

    def lr_at(self, state: TrainState) -> float:
        """The learning rate of the step at ``state``'s position (the last step's once the epoch is done)."""
        step = min(state.step, self.steps_per_epoch - 1)
        return self.recipe.lr_at(state.epoch, step, self.steps_per_epoch)

    def payload(self, state: TrainState) -> dict:
        """What ``checkpoint.pt`` holds (its keys are a file format: resume reads them)."""
        return {"spec": self.spec.to_dict(), "n_classes": self.data.n_classes, "model": self.model.state_dict(),
                "head": self.head.state_dict(), "optimiser": self.optimiser.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": state.epoch, "step": state.step,
                "history": state.history, "running": asdict(state.running), "torch_rng": torch.get_rng_state(),
                "recipe": asdict(self.recipe), "seed": self.seed, "world_size": self.world,
                "init_sha256": self.init_sha256}

    def resume(self, init: Path | None = None) -> TrainState:
        """The position to train from: the checkpoint's (weights restored), else the start, from the weights
        of the trained model ``init`` when given (fine-tuning: a checkpoint, once written, comes first)."""
        state = TrainState()
        found = self.checkpointer.load(self.device)
        if init is not None:
            self.init_sha256 = _init_digest(Path(init))
            if found is not None and found[0].get("init_sha256") != self.init_sha256:
                # a fine-tuning of another model (its backbone retrained since): resuming would keep stale weights
                log.warning("%s: fine-tuned from another %s (retrained since): set aside as *.stale.pt, starting "
                            "again", found[1], init)
                self.checkpointer.set_aside()
                found = None
        if found is not None:
            state = self._restore(*found)
        elif init is not None:
            self._initialise(Path(init))
        check_same_position(state.epoch, state.step, self.world)
        return state

    def _initialise(self, path: Path) -> None:
        """Backbone and margin head from a trained ``model.pt``: it must be of this architecture and corpus."""
        try:  # it exists: resume() took its digest
            blob = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:  # truncated, empty, not a torch file
            raise UserError(f"{path}: not a readable svbench model ({type(exc).__name__})") from None
        if not isinstance(blob, dict) or "model" not in blob:
            raise UserError(f"{path}: not an svbench model.pt (no backbone weights)")
        if "head" not in blob:
            raise UserError(f"{path}: holds no margin head (a model.pt from before svbench kept it); retrain it")
        if blob.get("spec") != self.spec.to_dict() or blob.get("n_classes") != self.data.n_classes:
            raise UserError(f"{path}: a model of another architecture or corpus ({blob.get('n_classes')} classes, "
                            f"this training set has {self.data.n_classes})")
        try:
            self.model.load_state_dict(blob["model"])
            self.head.load_state_dict(blob["head"])
        except RuntimeError as exc:  # weights of other shapes under the right spec: a damaged or edited file
            detail = (str(exc).splitlines() or [""])[0][:160]
            raise UserError(f"{path}: its weights do not fit the architecture ({detail}); retrain it") from None
        log.info("fine-tuning from %s", path)

    def _restore(self, ckpt: dict, source: Path) -> TrainState:
        if ckpt["spec"] != self.spec.to_dict() or ckpt["n_classes"] != self.data.n_classes:
            raise UserError(f"{source}: checkpoint is for another architecture or corpus; remove it to restart")
        self.model.load_state_dict(ckpt["model"])
        self.head.load_state_dict(ckpt["head"])
        self.optimiser.load_state_dict(ckpt["optimiser"])
        if "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        state = TrainState(ckpt["epoch"], ckpt["step"], ckpt["history"], RunningStats(**ckpt["running"]))
        if not self.lead:  # the saved sums are already totals over all ranks: count them once
            state.running.clear_counts()
        torch.set_rng_state(ckpt["torch_rng"])
        log.info("resumed from %s at epoch %d step %d", source, state.epoch, state.step)
        changed = _changed_options(ckpt.get("recipe") or {}, asdict(self.recipe))
        if changed:  # allowed (more epochs, a smaller batch to fit a GPU), but the weights are no longer one recipe's
            log.warning("%s was written with other training options (%s): resumed with this run's", source,
                        ", ".join(f"{k} {ckpt['recipe'][k]!r} -> {getattr(self.recipe, k)!r}" for k in changed))
        return state


# options that change how a run goes but not what it computes: resuming across them is routine (the layout,
# nodes × processes, slices the same global batches: a job resumed on more nodes trains the same model)
RUNTIME_OPTIONS = {"threads", "num_workers", "device", "checkpoint_minutes", "channels_last", "cudnn_benchmark",
                   "nodes", "processes", "collective_timeout_s"}


def _changed_options(saved: dict, current: dict) -> list[str]:
    """The recipe options a checkpoint was written with that differ from this run's (runtime ones aside)."""
    return sorted(k for k in saved if k in current and k not in RUNTIME_OPTIONS and saved[k] != current[k])


def _init_digest(path: Path) -> str:
    """The SHA-256 of the model a fine-tuning starts from; a missing one is named like the loading does."""
    try:
        return file_sha256(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no trained model to fine-tune (run the training step first)") from None
    except OSError as exc:
        raise UserError(f"{path}: not a readable svbench model ({exc.strerror or exc})") from None


def _optimiser(model: torch.nn.Module, head: AAMSoftmax, recipe: Recipe) -> torch.optim.SGD:
    """SGD with weight decay on the backbone's weights only (not biases, BN, or the margin head)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": recipe.weight_decay},
         {"params": no_decay, "weight_decay": 0.0},
         {"params": head.parameters(), "weight_decay": 0.0}],
        lr=recipe.peak_lr(), momentum=recipe.momentum, nesterov=recipe.nesterov)


def build_job(spec: ArchSpec, recipe: Recipe, seed: int, data: TrainingSet, layout: tuple[int, int],
              device: torch.device, checkpointer: Checkpointer) -> TrainingJob:
    """The model, head and optimiser of a fresh start; ``layout``: (rank, world size)."""
    rank, world = layout
    if data.dataset.fbank.n_mels != spec.n_mels:  # else a shape error in the first step, or the wrong input
        raise UserError(f"{spec.name}: the model takes {spec.n_mels} mel bins (n_mels), the feature store has "
                        f"{data.dataset.fbank.n_mels} (features.n_mels): build the spec with the store's")
    amp_dtype = amp_mode(recipe.amp, device)
    model = build(spec).to(device)
    head = AAMSoftmax(spec.embedding, data.n_classes, scale=recipe.aam_scale, margin=0.0).to(device)
    if device.type == "cuda" and recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimiser = _optimiser(model, head, recipe)
    net: torch.nn.Module = TrainingModel(model, head, amp_dtype)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
    return TrainingJob(spec, recipe, seed, rank, world, device, amp_dtype, data, model, head, net, optimiser,
                       grad_scaler(device, amp_dtype), checkpointer)
