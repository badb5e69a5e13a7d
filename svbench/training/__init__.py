"""Training one architecture: the recipe, the data, the loop, checkpoints and resume, DDP.

Determinism by construction: the sample order of epoch e is a permutation seeded by (seed, e) and the
crop (and augmentation) of sample i in epoch e is drawn from a generator seeded by (seed, e, i); a
checkpoint therefore only needs the weights, the optimiser and the position (epoch, step).

Modules: ``recipe`` (hyper-parameters and schedules), ``data`` (crops, epoch order, rank batches),
``distributed`` (process layout and collective checks), ``checkpoint`` (the job's files), ``model`` (backbone +
head, AMP), ``state`` (position and running statistics), ``stop`` (stop policies), ``job`` (the built parts)
and ``loop`` (``train_step``, ``run_epoch``, ``train``).
"""

from .checkpoint import CHECKPOINT_KEYS, HISTORY_COLUMNS, Checkpointer, average_state, load_checkpoint
from .data import CropDataset, TrainingSet, epoch_order, load_training_set, rank_batches
from .distributed import dist_env, weights_digest
from .job import TrainingJob, build_job
from .loop import run_epoch, train, train_step
from .model import TrainingModel, amp_mode, grad_scaler
from .recipe import AMP_MODES, LARGE_MARGIN_DEFAULTS, Recipe, large_margin_recipe
from .state import RunningStats, StepResult, TrainState
from .stop import Preempted, StopAfterSteps, StopOnSignal, StopPolicy

__all__ = [
    "AMP_MODES", "CHECKPOINT_KEYS", "HISTORY_COLUMNS", "LARGE_MARGIN_DEFAULTS", "Checkpointer", "CropDataset",
    "Preempted", "Recipe", "RunningStats", "StepResult", "StopAfterSteps", "StopOnSignal", "StopPolicy", "TrainState",
    "TrainingJob", "TrainingModel", "TrainingSet", "amp_mode", "average_state", "build_job", "dist_env",
    "epoch_order", "grad_scaler", "large_margin_recipe", "load_checkpoint", "load_training_set", "rank_batches",
    "run_epoch", "train", "train_step", "weights_digest",
]
