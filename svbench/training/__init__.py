"""Training one architecture: the recipe, the data, the loop, checkpoints and resume, DDP.

Determinism by construction: the sample order of epoch e is a permutation seeded by (seed, e) and the
crop (and augmentation) of sample i in epoch e is drawn from a generator seeded by (seed, e, i); a
checkpoint therefore only needs the weights, the optimiser and the position (epoch, step).

Modules: ``recipe`` (hyper-parameters and schedules), ``data`` (crops, epoch order, rank batches),
``distributed`` (process layout and collective checks), ``checkpoint`` (the job's files), ``model`` (backbone +
head, AMP), ``state`` (position and running statistics), ``stop`` (stop policies), ``job`` (the built parts)
and ``loop`` (``train_step``, ``run_epoch``, ``train``); ``launch`` starts a job's processes (torchrun per node).

``recipe`` and ``launch`` import no torch: the workflow reads them every time Snakemake parses it. The torch
parts load on first use (PEP 562), as in :mod:`svbench.models`.
"""

from importlib import import_module

from .recipe import AMP_MODES as AMP_MODES
from .recipe import LARGE_MARGIN_DEFAULTS as LARGE_MARGIN_DEFAULTS
from .recipe import Recipe as Recipe
from .recipe import large_margin_recipe as large_margin_recipe

_WITH_TORCH = {
    **dict.fromkeys(("CHECKPOINT_KEYS", "HISTORY_COLUMNS", "Checkpointer", "average_state", "load_checkpoint"),
                    "checkpoint"),
    **dict.fromkeys(("CropDataset", "TrainingSet", "epoch_order", "load_training_set", "rank_batches"), "data"),
    **dict.fromkeys(("dist_env", "weights_digest"), "distributed"),
    **dict.fromkeys(("TrainingJob", "build_job"), "job"),
    **dict.fromkeys(("run_epoch", "train", "train_step"), "loop"),
    **dict.fromkeys(("TrainingModel", "amp_mode", "grad_scaler"), "model"),
    **dict.fromkeys(("RunningStats", "StepResult", "TrainState"), "state"),
    **dict.fromkeys(("Preempted", "StopAfterSteps", "StopOnSignal", "StopPolicy"), "stop"),
}

__all__ = sorted(["AMP_MODES", "LARGE_MARGIN_DEFAULTS", "Recipe", "large_margin_recipe", *_WITH_TORCH])


def __getattr__(name: str) -> object:
    if name in _WITH_TORCH:
        return getattr(import_module(f".{_WITH_TORCH[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
