"""The position of a training run and its running statistics: what a checkpoint saves besides weights."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StepResult:
    """One optimiser step's outcome."""

    loss: float  # mean over the batch
    correct: int  # samples whose top logit is their class
    samples: int


@dataclass
class RunningStats:
    """Sums over the epoch so far (over all ranks once reduced)."""

    loss: float = 0.0  # sum of the per-sample losses
    correct: int = 0
    seen: int = 0  # samples
    seconds: float = 0.0  # spent in steps
    wait: float = 0.0  # spent waiting for the data loader

    def add(self, result: StepResult) -> None:
        self.loss += result.loss * result.samples
        self.correct += result.correct
        self.seen += result.samples

    def counts(self) -> tuple[float, int, int]:
        """(loss, correct, seen): the sums that are added up over ranks."""
        return self.loss, self.correct, self.seen

    def set_counts(self, counts: tuple[float, int, int]) -> None:
        self.loss, self.correct, self.seen = counts

    def clear_counts(self) -> None:
        self.set_counts((0.0, 0, 0))

    @property
    def elapsed(self) -> float:
        """Seconds of the epoch so far: steps plus data wait."""
        return self.seconds + self.wait

    def mean_loss(self) -> float:
        return self.loss / max(self.seen, 1)

    def accuracy(self) -> float:
        return self.correct / max(self.seen, 1)

    def samples_per_s(self) -> float:
        return self.seen / max(self.elapsed, 1e-9)


@dataclass
class TrainState:
    """Where training stands: the epoch and the step inside it (0-based), the finished epochs' history rows
    and the current epoch's running statistics."""

    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    running: RunningStats = field(default_factory=RunningStats)
    steps_run: int = 0  # steps made by this call of train (not saved): what a stop policy counts
