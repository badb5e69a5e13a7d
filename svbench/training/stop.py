"""When training stops early: a stop policy, asked after every step, makes the loop checkpoint and raise
``Preempted``. The default stops on SIGTERM (SLURM time limit, preemption); tests inject one that stops
after a number of steps, as if the job had been killed there."""

from __future__ import annotations

import logging
import signal
from abc import ABC, abstractmethod
from collections.abc import Iterable

log = logging.getLogger("svbench.training")


class Preempted(Exception):
    """Training stopped on request after writing a checkpoint; the job should be resumed."""


class StopPolicy(ABC):
    """Asked after every step whether to checkpoint and stop; entered for the whole training run."""

    def __enter__(self) -> StopPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @abstractmethod
    def __call__(self, steps_done: int) -> bool:
        """True to stop now; ``steps_done``: the steps this run has made (not counting resumed ones)."""


class StopOnSignal(StopPolicy):
    """Stop at the next step after one of ``signals`` arrived (handlers installed while entered)."""

    def __init__(self, signals: Iterable[signal.Signals] = (signal.SIGTERM,)) -> None:
        self.signals = tuple(signals)
        self.received: signal.Signals | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopOnSignal:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        self.received = signal.Signals(signum)
        log.warning("%s received: checkpointing at the next step", self.received.name)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __call__(self, steps_done: int) -> bool:
        return self.received is not None


class StopAfterSteps(StopPolicy):
    """Stop once this run has made ``steps`` steps: a kill at a known step, for tests."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __call__(self, steps_done: int) -> bool:
        return steps_done >= self.steps
