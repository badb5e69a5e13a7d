"""The intervals of the study's tables.

Accuracy: per job from its ``intervals.json`` (speaker bootstrap), per architecture from the replicates of all
its seeds (seeds and speakers resampled together).

Energy and carbon: Monte Carlo draws per job (:class:`StudyDraws`): each sensor's tolerance and the coverage
gaps (:func:`svbench.uncertainty.draws.energy_draws`), times the carbon factors' ranges. The factors are drawn once
for the whole study (one PUE, one grid, whatever the job): resample ``b`` of every job holds the same factor
values, so a mean over seeds or a comparison of two architectures does not average their uncertainty away.
Per architecture, the seeds are resampled too, with the same seed choice for the accuracy and the energy of
one resampled study (:func:`svbench.uncertainty.draws.seed_choice`). A fine-tuned model (``<arch>+lm``) is made from its
backbone's seed: it takes the backbone's seed choice and the draws of the backbone's training energy (plus
its own fine-tuning's), so that what fine-tuning adds and buys is a paired difference.

Column names follow the summary's: ``eer_<backend>_<list>`` (in %) gets ``eer_<backend>_<list>_low`` and
``…_high``; minDCF, energy and CO2e the same. A figure without intervals (no ``score_intervals`` run, no
sensor) has none: empty, not zero.
"""

from __future__ import annotations

import logging
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.fileio import read_json_object
from svbench.instrument.config import EnergyConfig
from svbench.layout import Layout, Model
from svbench.uncertainty.bootstrap import LEVEL, METRICS
from svbench.uncertainty.draws import (
    carbon_ratio_draws,
    interval_of,
    measured_energy_draws,
    resampled_mean,
    seed_choice,
)
from svbench.uncertainty.score_intervals import read_replicates

log = logging.getLogger("svbench.study")

SCALE = {"eer": 100.0, "min_dcf_0.01": 1.0, "min_dcf_0.05": 1.0}  # EER columns are in %
BOUNDS = ("_low", "_high")
SENSORS = ("nvml", "rapl", "ipmi", "estimate")
# the energy and carbon figures of a job that get Monte Carlo intervals
DRAWN = ("train_energy_kwh", "train_co2e_g", "embodied_co2e_g", "inference_j_per_trial",
         "inference_kj_per_audio_hour", "inference_co2e_g")


def column(metric: str, backend: str, trial_list: str) -> str:
    return f"{metric}_{backend}_{trial_list}"


def is_bound(name: str) -> bool:
    """Whether a summary column is an interval bound (kept out of the mean ± sd over seeds)."""
    return name.endswith(BOUNDS)


def job_columns(intervals_json: Path) -> dict[str, float]:
    """``<metric>_<backend>_<list>_low/_high`` of one job; nothing when the job has no intervals."""
    path = Path(intervals_json)
    if not path.exists():
        return {}
    summary = read_json_object(path, "speaker-bootstrap intervals")
    out = {}
    for trial_list, backends in summary.items():
        if not isinstance(backends, dict):
            continue
        for backend, metrics in backends.items():
            for metric in METRICS:
                name = column(metric, backend, trial_list)
                out[name + "_low"] = SCALE[metric] * metrics[metric]["low"]
                out[name + "_high"] = SCALE[metric] * metrics[metric]["high"]
    return out


def sensor_tolerances(energy: dict) -> dict[str, float]:
    """Each sensor's relative tolerance (95 % half-width) from the config's ``energy`` block, defaults filled."""
    config = EnergyConfig.from_dict(energy)
    return {name: getattr(config, name).tolerance for name in SENSORS}


class StudyDraws:
    """Monte Carlo draws of every job's energy and carbon figures (:data:`DRAWN`), ``n`` per figure."""

    def __init__(self, n: int, seed: int, tolerances: dict[str, float], factors: dict) -> None:
        self.n, self.seed, self.tolerances = n, seed, tolerances
        rng = np.random.default_rng([seed, zlib.crc32(b"carbon")])
        self.carbon = carbon_ratio_draws(factors, rng, n)
        self.jobs: dict[tuple[str, int], dict[str, np.ndarray]] = {}

    def _ratio(self, part: dict, rng: np.random.Generator) -> np.ndarray:
        """Draws of a measured total (:func:`svbench.study.summary.energy_of`) over its value; NaN unmeasured."""
        joules = part["energy_j"]
        if not part["by_sensor"] or not joules > 0:
            return np.full(self.n, math.nan)
        return measured_energy_draws(part["by_sensor"], part["gap_j"], self.tolerances, rng, self.n) / joules

    def _training_ratio(self, arch: str, seed: int, row: dict, parts: dict[str, dict],
                        rng: np.random.Generator) -> np.ndarray:
        """Draws of the training energy over its value; a fine-tuned model's are its backbone's draws (drawn
        before, :meth:`svbench.layout.Layout.jobs` lists the backbone first) plus its fine-tuning's own."""
        model = Model.named(arch)
        base = self.jobs.get((model.backbone, seed))
        if model.fine_tuned and base is None:
            log.warning("%s seed %d: drawn before its backbone: its training energy is drawn unpaired", arch, seed)
        if not model.fine_tuned or "finetune" not in parts or base is None or not row["train_energy_kwh"] > 0:
            return self._ratio(parts["train"], rng)
        tuned_kwh = parts["finetune"]["energy_j"] / 3.6e6
        return (base["train_energy_kwh"] + tuned_kwh * self._ratio(parts["finetune"], rng)) / row["train_energy_kwh"]

    def add_job(self, arch: str, seed: int, row: dict, parts: dict[str, dict], audio_share: float,
                level: float = LEVEL) -> dict[str, float]:
        """Draw one job's figures from its ``row`` and measured ``parts`` (train, embed_test, score totals;
        a fine-tuned model's finetune too);
        returns the ``<figure>_low/_high`` columns. ``audio_share``: the share of the embedding energy the
        trial lists' figures take (their audio over all test audio, summed over the lists)."""
        rng = np.random.default_rng([self.seed, zlib.crc32(arch.encode()), seed])
        train = self._training_ratio(arch, seed, row, parts, rng)
        embed_j = parts["embed_test"]["energy_j"] * audio_share
        score_j = parts["score"]["energy_j"]
        inference = ((embed_j * self._ratio(parts["embed_test"], rng) + score_j * self._ratio(parts["score"], rng))
                     / (embed_j + score_j))
        grid = self.carbon["pue"] * self.carbon["intensity"]
        draws = {"train_energy_kwh": row["train_energy_kwh"] * train,
                 "train_co2e_g": row["train_co2e_g"] * train * grid,
                 "embodied_co2e_g": row["embodied_gpu_co2e_g"] * self.carbon["gpu"]
                 + row["embodied_server_co2e_g"] * self.carbon["server"],
                 "inference_j_per_trial": row["inference_j_per_trial"] * inference,
                 "inference_kj_per_audio_hour": row["inference_kj_per_audio_hour"] * inference,
                 "inference_co2e_g": row["inference_co2e_g"] * inference * grid}
        self.jobs[(arch, seed)] = draws
        out = {}
        for name, values in draws.items():
            out[name + "_low"], out[name + "_high"] = interval_of(values, level)
        return out


def arch_columns(layout: Layout, frame: pd.DataFrame, draws: StudyDraws | None = None, seed: int = 0,
                 level: float = LEVEL) -> pd.DataFrame:
    """Per architecture: ``<column>_low/_high`` over its seeds and the speakers (accuracy) or the Monte Carlo
    draws (energy, carbon), one row per architecture."""
    rows = []
    for arch, chosen, replicates in resampled_studies(layout, frame, draws, seed):
        row: dict = {"arch": arch}
        for name, per_seed in replicates.items():
            row[name + "_low"], row[name + "_high"] = interval_of(resampled_mean(per_seed, chosen), level)
        rows.append(row)
    return pd.DataFrame(rows)


def resampled_studies(layout: Layout, frame: pd.DataFrame, draws: StudyDraws | None, seed: int = 0):
    """Per architecture: its seed choice (:func:`svbench.uncertainty.draws.seed_choice`) and, per summary column, the
    replicates of each of its seeds (accuracy: speaker bootstrap, scaled as the column; energy: draws)."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, tuple[list[int], np.ndarray]] = {}
    # the trained models first (in the frame's order), so that a fine-tuned one finds its backbone's choice
    groups = sorted(frame.groupby("arch", sort=False), key=lambda g: Model.named(g[0]).fine_tuned)
    for arch, group in groups:
        seeds = [int(s) for s in group["seed"]]
        replicates: dict[str, list[np.ndarray]] = {}
        paths = [Path(layout.replicates(arch, s)) for s in seeds]
        absent = [p for p in paths if not p.exists()]
        if absent:  # said, not silent: the architecture's accuracy gets no interval and no Pareto frequency
            log.warning("%s: no speaker-bootstrap replicates: %s has no accuracy interval and is not ranked over "
                        "resampled studies", ", ".join(map(str, absent)), arch)
        else:
            loaded = [read_replicates(p) for p in paths]
            for key in loaded[0]:
                trial_list, backend, metric = key.split("/")
                name = column(metric, backend, trial_list)
                if name in group:
                    replicates[name] = [SCALE[metric] * r[key] for r in loaded]
        if draws is not None and all((arch, s) in draws.jobs for s in seeds):
            for name in DRAWN:
                replicates[name] = [draws.jobs[(arch, s)][name] for s in seeds]
        n = min((len(r) for per_seed in replicates.values() for r in per_seed), default=0)
        model = Model.named(arch)
        base = chosen.get(model.backbone) if model.fine_tuned else None
        if base is not None and base[0] == seeds and base[1].shape[1] == n:
            yield arch, base[1], replicates  # the backbone's seeds: drawn once, the grid's draws unchanged
            continue
        if model.fine_tuned:
            log.warning("%s: not paired with its backbone (other seeds or resamples): its comparison with it "
                        "counts both models' seed and energy uncertainty", arch)
        chosen[arch] = (seeds, seed_choice(len(seeds), n, rng))
        yield arch, chosen[arch][1], replicates
