"""The files a training job leaves in its folder: ``checkpoint.pt`` (the one before kept as
``checkpoint.prev.pt``), the kept epoch weights ``epochs/epochNNNN.pt``, and ``history.csv``.

A checkpoint holds the weights, the optimiser and the position (epoch, step) with the running epoch
statistics: with the deterministic epoch order nothing else is needed to resume bit-exactly.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path

import torch

from svbench.errors import UserError
from svbench.fileio import atomic_write
from svbench.layout import CHECKPOINT, HISTORY, PREVIOUS_CHECKPOINT

log = logging.getLogger("svbench.training")

CHECKPOINT_KEYS = ("spec", "n_classes", "model", "head", "optimiser", "epoch", "step", "history", "running",
                   "torch_rng")
HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "lr", "margin", "seconds", "samples_per_s", "data_wait_share"]


def save_atomic(obj: object, path: Path, previous: Path | None = None) -> None:
    """``torch.save`` through a temporary file; with ``previous``, the former ``path`` is kept there."""
    # durable: on disk before the rename, a node crash must not leave a truncated checkpoint
    with atomic_write(path, "wb", durable=True, previous=previous) as f:
        torch.save(obj, f)


def _try_load(path: Path, device: torch.device) -> tuple[dict | None, str]:
    """(the checkpoint, "") or (None, why it cannot be resumed from)."""
    if not path.exists():
        return None, f"{path}: missing"
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # truncated, empty, not a torch file, ...: all mean "damaged"
        detail = (str(exc).splitlines() or [""])[0][:160]  # torch's messages run to a paragraph
        return None, f"{path}: cannot load ({type(exc).__name__}: {detail})"
    if isinstance(ckpt, dict) and all(key in ckpt for key in CHECKPOINT_KEYS):
        return ckpt, ""
    return None, f"{path}: cannot load (not a training checkpoint)"


def load_checkpoint(current: Path, previous: Path, device: torch.device) -> tuple[dict, Path] | None:
    """The checkpoint to resume from and its file: ``current``, else (damaged or missing) ``previous``.

    None when neither exists (a fresh start); a UserError naming both when neither loads."""
    if not current.exists() and not previous.exists():
        return None
    problems = []
    for path in (current, previous):
        ckpt, problem = _try_load(path, device)
        if ckpt is not None:
            if path != current:
                log.warning("resuming from %s, the checkpoint before %s", path, current)
            return ckpt, path
        problems.append(problem)
        if path.exists():
            log.warning("%s", problem)
    raise UserError(f"no checkpoint to resume from: {'; '.join(problems)}; remove both to train from scratch")


HEAD_PREFIX = "head."  # the margin head's entries in a kept epoch file, beside the backbone's


def average_state(paths: list[Path]) -> dict:
    """Element-wise mean of saved state dicts over the keys all of them hold (an epoch file of an older run has
    no head); integer buffers (BN batch counters) come from the last."""
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    averaged = {}
    for key, last in states[-1].items():
        if not all(key in state for state in states):
            continue
        if last.is_floating_point():
            averaged[key] = sum(s[key].double() for s in states).div(len(states)).to(last.dtype)
        else:
            averaged[key] = last.clone()
    return averaged


def write_history(path: Path, history: list[dict]) -> None:
    """``history.csv``: one row per finished epoch, floats to 6 decimals."""
    with atomic_write(path) as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
                             for k, v in row.items()})


class Checkpointer:
    """When to checkpoint and where: every ``minutes`` mid-epoch and at every epoch's end; only the lead
    rank writes, every rank keeps the clock (so that they agree on when the next one is due)."""

    def __init__(self, out_dir: Path, minutes: float, lead: bool) -> None:
        self.out_dir, self.minutes, self.lead = out_dir, minutes, lead
        self.current, self.previous = out_dir / CHECKPOINT, out_dir / PREVIOUS_CHECKPOINT
        self.epochs_dir = out_dir / "epochs"
        self._last_save = time.monotonic()
        # a checkpoint.pt that did not load must not be rotated into checkpoint.prev.pt: the next write replaces it
        self._keep_previous = True

    def load(self, device: torch.device) -> tuple[dict, Path] | None:
        """The checkpoint to resume from and its file (see ``load_checkpoint``), None for a fresh start."""
        found = load_checkpoint(self.current, self.previous, device)
        self._keep_previous = found is None or found[1] == self.current
        self._last_save = time.monotonic()
        return found

    def set_aside(self) -> None:
        """Rename ``checkpoint.pt`` and ``checkpoint.prev.pt`` to ``*.stale.pt`` (lead rank): checkpoints of
        another run, kept for inspection but never resumed from."""
        if self.lead:
            for path in (self.current, self.previous):
                if path.exists():
                    path.replace(path.with_name(path.stem + ".stale.pt"))
        self._keep_previous = True

    def due(self, epoch_end: bool = False) -> bool:
        """Whether a checkpoint is due now: at an epoch's end, or ``minutes`` after the last one."""
        if epoch_end:
            return True
        return self.minutes > 0 and time.monotonic() - self._last_save >= 60 * self.minutes

    def save(self, payload: dict) -> None:
        """Write ``checkpoint.pt`` (lead rank), the former one becoming ``checkpoint.prev.pt``."""
        if self.lead:
            save_atomic(payload, self.current, self.previous if self._keep_previous else None)
            self._keep_previous = True
        self._last_save = time.monotonic()

    def epoch_weights(self, epoch: int) -> Path:
        """The kept weights after ``epoch`` (1-based): backbone and head."""
        return self.epochs_dir / f"epoch{epoch:04d}.pt"

    def keep_epoch_weights(self, epoch: int, model: torch.nn.Module, head: torch.nn.Module, keep: int) -> None:
        """Save the backbone and the margin head (keys ``head.*``) after ``epoch`` (1-based) and drop the files no
        longer among the last ``keep``."""
        self.epochs_dir.mkdir(exist_ok=True)
        state = model.state_dict() | {HEAD_PREFIX + k: v for k, v in head.state_dict().items()}
        save_atomic(state, self.epoch_weights(epoch))
        for old in self.epochs_dir.glob("epoch*.pt"):
            if int(old.stem.removeprefix("epoch")) <= epoch - keep:
                old.unlink()

    def write_history(self, history: list[dict]) -> None:
        """``history.csv`` of the finished epochs (lead rank)."""
        if self.lead:
            write_history(self.out_dir / HISTORY, history)
