"""The accuracy intervals of the study's tables: per job from its ``intervals.json``, per architecture from the
replicates of all its seeds (seeds and speakers resampled together, :func:`svbench.intervals.seed_interval`).

Column names follow the summary's: ``eer_<backend>_<list>`` (in %) gets ``eer_<backend>_<list>_low`` and
``…_high``; minDCF the same. A job without intervals (no ``score_intervals`` run) has none: empty, not zero.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.bootstrap import METRICS
from svbench.energy.config import EnergyConfig
from svbench.intervals import LEVEL, energy_draws, interval_of, read_replicates, seed_interval
from svbench.layout import Layout

SCALE = {"eer": 100.0, "min_dcf_0.01": 1.0, "min_dcf_0.05": 1.0}  # EER columns are in %
BOUNDS = ("_low", "_high")


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
    summary = json.loads(path.read_text())
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


def arch_columns(layout: Layout, frame: pd.DataFrame, seed: int = 0, level: float = LEVEL) -> pd.DataFrame:
    """Per architecture: ``<column>_low/_high`` over its seeds and the speakers, one row per architecture."""
    rng = np.random.default_rng(seed)
    rows = []
    for arch, group in frame.groupby("arch", sort=False):
        paths = [Path(layout.replicates(arch, s)) for s in group["seed"]]
        row: dict = {"arch": arch}
        if all(p.exists() for p in paths):
            replicates = [read_replicates(p) for p in paths]
            for key in replicates[0]:
                trial_list, backend, metric = key.split("/")
                name = column(metric, backend, trial_list)
                if name not in group:
                    continue
                scaled = [SCALE[metric] * r[key] for r in replicates]
                found = seed_interval(scaled, group[name].to_numpy(dtype=float), rng, level)
                row[name + "_low"], row[name + "_high"] = found["low"], found["high"]
        rows.append(row)
    return pd.DataFrame(rows)


SENSORS = ("nvml", "rapl", "ipmi", "estimate")


def sensor_tolerances(energy: dict) -> dict[str, float]:
    """Each sensor's relative tolerance (95 % half-width) from the config's ``energy`` block, defaults filled."""
    config = EnergyConfig.from_dict(energy)
    return {name: getattr(config, name).tolerance for name in SENSORS}


def energy_interval(by_sensor: dict[str, float], gap_j: float, tolerances: dict[str, float],
                    rng: np.random.Generator, draws: int, level: float = LEVEL) -> tuple[float, float]:
    """The interval of a total from its sensors' joules, their tolerances and what the coverage gaps hide."""
    if not by_sensor:
        return float("nan"), float("nan")
    parts = {sensor: (joules, tolerances.get(sensor, tolerances["estimate"])) for sensor, joules in by_sensor.items()}
    return interval_of(energy_draws(parts, gap_j, rng, draws), level)
