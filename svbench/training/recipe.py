"""The training recipe (config section ``training``): typed, validated fields with their defaults, and the
learning-rate and margin schedules, pure functions of the position (epoch, step)."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, fields

from svbench.errors import UserError
from svbench.typed_config import check_fields, schema_field, section_defaults

AMP_MODES = ("auto", "bf16", "fp16", "off")

@dataclass
class Recipe:
    """Training hyper-parameters (config section ``training``); defaults follow WeSpeaker's recipe.

    The types (annotations) and bounds (field metadata) of every field are checked on construction;
    their defaults and bounds are the schema's (svbench/schemas/config.schema.yaml, read by schema_field).
    """

    epochs: int = schema_field("training.epochs")
    # the global batch: split over nodes × processes, never multiplied by them
    batch_size: int = schema_field("training.batch_size")
    crop_frames: int = schema_field("training.crop_frames")
    samples_per_epoch: int | None = schema_field("training.samples_per_epoch")  # None: one crop per training utterance
    lr: float = schema_field("training.lr")
    final_lr: float = schema_field("training.final_lr")
    warmup_epochs: int = schema_field("training.warmup_epochs")
    scale_lr_by_batch: bool = schema_field("training.scale_lr_by_batch")  # lr × batch_size / 64
    momentum: float = schema_field("training.momentum")
    nesterov: bool = schema_field("training.nesterov")
    weight_decay: float = schema_field("training.weight_decay")
    aam_scale: float = schema_field("training.aam_scale")
    margin: float = schema_field("training.margin")
    margin_start_epoch: int = schema_field("training.margin_start_epoch")
    margin_end_epoch: int = schema_field("training.margin_end_epoch")
    # speeds 0.9/1.0/1.1, each its own class (3x the speakers)
    speed_perturb: bool = schema_field("training.speed_perturb")
    musan: str | None = schema_field("training.musan")  # MUSAN folder (noise/, speech/, music/) for additive noise
    rir: str | None = schema_field("training.rir")  # folder of room impulse responses (*.wav) for reverberation
    aug_prob: float = schema_field("training.aug_prob")  # share of samples augmented (half noise, half reverb if both)
    average_last: int = schema_field("training.average_last")  # model.pt = mean of the weights after the last N epochs
    # mid-epoch checkpoints this often: a SIGKILL loses at most this
    checkpoint_minutes: float = schema_field("training.checkpoint_minutes")
    amp: str = schema_field("training.amp")  # auto: bf16 on CUDA where supported, else fp16 + scaler; CPU: off
    channels_last: bool = schema_field("training.channels_last")  # CUDA only
    cudnn_benchmark: bool = schema_field("training.cudnn_benchmark")  # CUDA only
    nodes: int = schema_field("training.nodes")  # nodes per training job, each running `processes` (svbench launch)
    # processes per node (one per GPU); the workflow launches them with torchrun
    processes: int = schema_field("training.processes")
    # a rank whose peer is gone fails after this, never hangs
    collective_timeout_s: float = schema_field("training.collective_timeout_s")
    num_workers: int = schema_field("training.num_workers")
    device: str = schema_field("training.device")
    threads: int = schema_field("training.threads")  # torch.set_num_threads, and the rule's Snakemake threads

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


# WeSpeaker's large-margin fine-tuning (examples/voxceleb/v2/conf/resnet_lm.yaml): a few epochs of long crops, a large
# margin from the first step, a small learning rate, the weights of the last epoch; its defaults are the schema's
# large_margin block (less its switch, enabled). Every other training option (augmentation, speed perturbation,
# optimiser, AMP, nodes, processes) is the training's: "the same augmentation".
LARGE_MARGIN_DEFAULTS = {key: value for key, value in section_defaults("large_margin").items() if key != "enabled"}


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
