"""The training recipe (config section ``training``): typed, validated fields with their defaults, and the
learning-rate and margin schedules, pure functions of the position (epoch, step)."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, fields

from svbench.errors import UserError
from svbench.typed_config import bounded, check_fields

AMP_MODES = ("auto", "bf16", "fp16", "off")

@dataclass
class Recipe:
    """Training hyper-parameters (config section ``training``); defaults follow WeSpeaker's recipe.

    The types (annotations) and bounds (field metadata) of every field are checked on construction;
    svbench/schemas/config.schema.yaml states the same bounds and defaults (tests check both).
    """

    epochs: int = bounded(150, ge=1)
    batch_size: int = bounded(128, ge=1)  # the global batch: split over nodes × processes, never multiplied by them
    crop_frames: int = bounded(200, ge=8)
    samples_per_epoch: int | None = bounded(None, ge=1)  # None: one crop per training utterance
    lr: float = bounded(0.1, gt=0)
    final_lr: float = bounded(5e-5, gt=0)
    warmup_epochs: int = bounded(6, ge=0)
    scale_lr_by_batch: bool = True  # lr × batch_size / 64
    momentum: float = bounded(0.9, ge=0)
    nesterov: bool = True
    weight_decay: float = bounded(1e-4, ge=0)
    aam_scale: float = bounded(32.0, gt=0)
    margin: float = bounded(0.2, ge=0)
    margin_start_epoch: int = bounded(20, ge=0)
    margin_end_epoch: int = bounded(40, ge=0)
    speed_perturb: bool = False  # speeds 0.9/1.0/1.1, each its own class (3x the speakers)
    musan: str | None = None  # MUSAN folder (noise/, speech/, music/) for additive noise
    rir: str | None = None  # folder of room impulse responses (*.wav) for reverberation
    aug_prob: float = bounded(0.6, ge=0, le=1)  # share of samples augmented (half noise, half reverb if both)
    average_last: int = bounded(1, ge=1)  # model.pt = mean of the weights after the last N epochs
    checkpoint_minutes: float = bounded(10.0, ge=0)  # mid-epoch checkpoints this often: a SIGKILL loses at most this
    amp: str = bounded("auto", choices=AMP_MODES)  # auto: bf16 on CUDA where supported, else fp16 + scaler; CPU: off
    channels_last: bool = True  # CUDA only
    cudnn_benchmark: bool = True  # CUDA only
    nodes: int = bounded(1, ge=1)  # nodes per training job, each running `processes` (svbench launch)
    processes: int = bounded(1, ge=1)  # processes per node (one per GPU); the workflow launches them with torchrun
    collective_timeout_s: float = bounded(600.0, gt=0)  # a rank whose peer is gone fails after this, never hangs
    num_workers: int = bounded(0, ge=0)
    device: str = bounded("auto", pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")
    threads: int | None = bounded(None, ge=1)

    where: InitVar[str] = "training"  # the config key named in errors; not a field

    def __post_init__(self, where: str) -> None:
        """UserError naming the first field of a wrong type or out of its bounds; ints become floats where
        a float is expected."""
        check_fields(self, where)
        self.rank_batch(self.world_size, where)

    @classmethod
    def from_dict(cls, options: dict, where: str = "training") -> Recipe:
        """The recipe of a config section; an unknown key is a UserError naming it."""
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UserError(f"{where}.{unknown[0]}: unknown training option (known: {', '.join(sorted(known))})")
        return cls(**options, where=where)

    def peak_lr(self) -> float:
        """The learning rate after warm-up, scaled by the global batch when ``scale_lr_by_batch``: a function of
        the recipe alone, so the process layout (nodes × processes) never changes it."""
        return self.lr * (self.batch_size / 64 if self.scale_lr_by_batch else 1.0)

    @property
    def world_size(self) -> int:
        """The processes of a training job: ``nodes`` × ``processes`` (per node)."""
        return self.nodes * self.processes

    def rank_batch(self, world_size: int, where: str = "training") -> int:
        """Each process's share of the global batch; UserError when the layout does not divide it (each process
        takes an equal share of the same global batch, so that the layout never changes the model)."""
        if self.batch_size % world_size:
            raise UserError(f"{where}.batch_size: {self.batch_size} (the global batch) is not divisible by the "
                            f"job's {world_size} processes (nodes × processes); choose a multiple of {world_size}")
        return self.batch_size // world_size

    def lr_at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """Linear warm-up to the peak, then exponential decay to ``final_lr`` at the last step; with
        ``scale_lr_by_batch`` both ends are scaled by the global batch / 64 (WeSpeaker's ExponentialDecrease
        multiplies the whole curve by that ratio)."""
        position = epoch + step / steps_per_epoch
        peak = self.peak_lr()
        if position < self.warmup_epochs:
            return peak * (position + 1 / steps_per_epoch) / self.warmup_epochs
        span = max(self.epochs - self.warmup_epochs, 1e-9)
        progress = min((position - self.warmup_epochs) / span, 1.0)
        final = self.final_lr * peak / self.lr
        return peak * (final / peak) ** progress

    def margin_at(self, epoch: int) -> float:
        """0 until ``margin_start_epoch``, then a linear ramp reaching ``margin`` at ``margin_end_epoch``."""
        if epoch < self.margin_start_epoch:
            return 0.0
        if epoch >= self.margin_end_epoch:
            return self.margin
        ramp = self.margin_end_epoch - self.margin_start_epoch + 1
        return self.margin * (epoch - self.margin_start_epoch + 1) / ramp


# WeSpeaker's large-margin fine-tuning (examples/voxceleb/v2/conf/resnet_lm.yaml): 5 epochs of 600-frame crops,
# global batch 64, margin 0.5 from the first step, lr 1e-4 -> 2.5e-5 after one warm-up epoch (both scaled by the global
# batch / 64, as in training), the weights of the last epoch. Every other training option (augmentation, speed
# perturbation, optimiser, AMP, nodes, processes) is the training's: "the same augmentation".
LARGE_MARGIN_DEFAULTS = {"epochs": 5, "batch_size": 64, "crop_frames": 600, "lr": 1.0e-4, "final_lr": 2.5e-5,
                         "warmup_epochs": 1, "margin": 0.5, "margin_start_epoch": 0, "margin_end_epoch": 0,
                         "average_last": 1, "samples_per_epoch": None}


def large_margin_recipe(training: dict, large_margin: dict) -> Recipe:
    """The fine-tuning recipe: the training's options with the ``large_margin`` block's (config section
    ``large_margin``; ``enabled`` is the workflow's switch) over WeSpeaker's fine-tuning defaults."""
    Recipe.from_dict(training)  # a bad training option is named as the training's
    options = {k: v for k, v in large_margin.items() if k != "enabled"}
    unknown = sorted(set(options) - set(LARGE_MARGIN_DEFAULTS))
    if unknown:
        raise UserError(f"large_margin.{unknown[0]}: unknown fine-tuning option (known: enabled, "
                        f"{', '.join(sorted(LARGE_MARGIN_DEFAULTS))}; the rest is the training's)")
    training = dict(training)
    for key in LARGE_MARGIN_DEFAULTS:
        training.pop(key, None)  # a training value never leaks into the fine-tuning: its own default instead
    return Recipe.from_dict(training | LARGE_MARGIN_DEFAULTS | options, where="large_margin")
