"""The training recipe (config section ``training``): typed, validated fields with their defaults, and the
learning-rate and margin schedules, pure functions of the position (epoch, step)."""

from __future__ import annotations

import math
import re
from dataclasses import Field, InitVar, dataclass, field, fields
from typing import Any

from svbench.errors import UserError

AMP_MODES = ("auto", "bf16", "fp16", "off")

_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
_BOUND_OPERATORS = (("ge", ">="), ("gt", ">"), ("le", "<="))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)  # bool is an int to Python, not here


def _has_type(kind: str, value: object) -> bool:
    """Whether ``value`` is of the annotation ``kind`` (int, float, bool, str); a float must be finite."""
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if not _is_number(value):
        return False
    return isinstance(value, int) if kind == "int" else math.isfinite(value)


def _accepts(kind: str, limits: dict, value: object) -> bool:
    """Whether ``value`` has the type ``kind`` and lies within ``limits``."""
    if not _has_type(kind, value):
        return False
    if "choices" in limits and value not in limits["choices"]:
        return False
    if "pattern" in limits and re.match(limits["pattern"], value) is None:
        return False
    if _is_number(value):
        return (value >= limits.get("ge", -math.inf) and value > limits.get("gt", -math.inf)
                and value <= limits.get("le", math.inf))
    return True


def _wanted(kind: str, limits: dict, nullable: bool) -> str:
    """What a field accepts, in words: "an integer >= 1 or null"."""
    if "choices" in limits:
        want = f"one of {', '.join(limits['choices'])}"
    elif "pattern" in limits:
        want = f"a string matching {limits['pattern']}"
    else:
        bounds = [f"{op} {limits[name]}" for name, op in _BOUND_OPERATORS if name in limits]
        want = _TYPE_NAMES[kind] + ((" " + " and ".join(bounds)) if bounds else "")
    return want + (" or null" if nullable else "")


def _check_field(spec: Field, value: object, key: str) -> object:
    """``value`` if it has the field's type (its annotation) and bounds, else a UserError naming ``key``."""
    kinds = spec.type.replace(" ", "").split("|")
    nullable = "None" in kinds
    if value is None and nullable:
        return None
    kind, limits = kinds[0], dict(spec.metadata)
    if _accepts(kind, limits, value):
        return float(value) if kind == "float" else value
    raise UserError(f"{key}: must be {_wanted(kind, limits, nullable)}, got {value!r}")


def _bounded(default: object, **limits: object) -> Any:
    """A field with its bounds (ge, gt, le: numbers; choices, pattern: strings), checked on construction."""
    return field(default=default, metadata=limits)


@dataclass
class Recipe:
    """Training hyper-parameters (config section ``training``); defaults follow WeSpeaker's recipe.

    The types (annotations) and bounds (field metadata) of every field are checked on construction;
    workflow/schemas/config.schema.yaml states the same bounds and defaults (tests check both).
    """

    epochs: int = _bounded(150, ge=1)
    batch_size: int = _bounded(128, ge=1)  # per process
    crop_frames: int = _bounded(200, ge=8)
    samples_per_epoch: int | None = _bounded(None, ge=1)  # None: one crop per training utterance
    lr: float = _bounded(0.1, gt=0)
    final_lr: float = _bounded(5e-5, gt=0)
    warmup_epochs: int = _bounded(6, ge=0)
    scale_lr_by_batch: bool = True  # lr × global batch / 64
    momentum: float = _bounded(0.9, ge=0)
    nesterov: bool = True
    weight_decay: float = _bounded(1e-4, ge=0)
    aam_scale: float = _bounded(32.0, gt=0)
    margin: float = _bounded(0.2, ge=0)
    margin_start_epoch: int = _bounded(20, ge=0)
    margin_end_epoch: int = _bounded(40, ge=0)
    speed_perturb: bool = False  # speeds 0.9/1.0/1.1, each its own class (3x the speakers)
    musan: str | None = None  # MUSAN folder (noise/, speech/, music/) for additive noise
    rir: str | None = None  # folder of room impulse responses (*.wav) for reverberation
    aug_prob: float = _bounded(0.6, ge=0, le=1)  # share of samples augmented (half noise, half reverb if both)
    average_last: int = _bounded(1, ge=1)  # model.pt = mean of the weights after the last N epochs
    checkpoint_minutes: float = _bounded(10.0, ge=0)  # mid-epoch checkpoints this often: a SIGKILL loses at most this
    amp: str = _bounded("auto", choices=AMP_MODES)  # auto: bf16 on CUDA where supported, else fp16 + scaler; CPU: off
    channels_last: bool = True  # CUDA only
    cudnn_benchmark: bool = True  # CUDA only
    processes: int = _bounded(1, ge=1)  # processes per job (one per GPU); the workflow launches them with torchrun
    num_workers: int = _bounded(0, ge=0)
    device: str = _bounded("auto", pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")
    threads: int | None = _bounded(None, ge=1)

    where: InitVar[str] = "training"  # the config key named in errors; not a field

    def __post_init__(self, where: str) -> None:
        """UserError naming the first field of a wrong type or out of its bounds; ints become floats where
        a float is expected."""
        for spec in fields(self):
            setattr(self, spec.name, _check_field(spec, getattr(self, spec.name), f"{where}.{spec.name}"))

    @classmethod
    def from_dict(cls, options: dict, where: str = "training") -> Recipe:
        """The recipe of a config section; an unknown key is a UserError naming it."""
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UserError(f"{where}.{unknown[0]}: unknown training option (known: {', '.join(sorted(known))})")
        return cls(**options, where=where)

    def peak_lr(self, world_size: int = 1) -> float:
        """The learning rate after warm-up, scaled by the global batch when ``scale_lr_by_batch``."""
        return self.lr * (self.batch_size * world_size / 64 if self.scale_lr_by_batch else 1.0)

    def lr_at(self, epoch: int, step: int, steps_per_epoch: int, world_size: int = 1) -> float:
        """Linear warm-up to the peak, then exponential decay to ``final_lr`` at the last step."""
        position = epoch + step / steps_per_epoch
        peak = self.peak_lr(world_size)
        if position < self.warmup_epochs:
            return peak * (position + 1 / steps_per_epoch) / self.warmup_epochs
        span = max(self.epochs - self.warmup_epochs, 1e-9)
        progress = min((position - self.warmup_epochs) / span, 1.0)
        return peak * (self.final_lr / peak) ** progress

    def margin_at(self, epoch: int) -> float:
        """0 until ``margin_start_epoch``, then a linear ramp reaching ``margin`` at ``margin_end_epoch``."""
        if epoch < self.margin_start_epoch:
            return 0.0
        if epoch >= self.margin_end_epoch:
            return self.margin
        ramp = self.margin_end_epoch - self.margin_start_epoch + 1
        return self.margin * (epoch - self.margin_start_epoch + 1) / ramp
