"""Monte Carlo draws: the seeds of a resampled study, a Pareto front's frequencies, and the energy and carbon
factors that the sensors and the published figures leave uncertain.

Across seeds, :func:`seed_interval` resamples the seeds too (hierarchical bootstrap: seeds with replacement, then
speakers), so the interval holds both the run-to-run spread and the speakers' sampling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from svbench.errors import UserError
from svbench.uncertainty.bootstrap import LEVEL, percentile_interval


def seed_choice(seeds: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Which seeds each resampled study holds: ``seeds`` draws with replacement per resample (seeds x resamples).

    One choice per architecture, shared by all its figures, keeps a resampled study whole: its EER and its
    energy come from the same seeds."""
    return rng.integers(0, seeds, size=(seeds, resamples))


def resampled_mean(replicates: Sequence[np.ndarray], chosen: np.ndarray) -> np.ndarray:
    """Per resample, the mean over the seeds ``chosen`` (:func:`seed_choice`) of their replicates."""
    stacked = np.vstack([np.asarray(r, dtype=np.float64)[: chosen.shape[1]] for r in replicates])
    return np.take_along_axis(stacked, chosen, axis=0).mean(axis=0)


def seed_replicates(replicates: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Replicates of the mean over seeds: per resample, the seeds drawn with replacement, then averaged.

    Every row of ``replicates`` (one per seed) holds the same speakers in each column."""
    return resampled_mean(replicates, seed_choice(len(replicates), len(replicates[0]), rng))


def seed_interval(replicates: Sequence[np.ndarray], points: Sequence[float], rng: np.random.Generator,
                  level: float = LEVEL) -> dict[str, float]:
    """Mean and sd over seeds, and an interval from resampling seeds and speakers together."""
    points = np.asarray(points, dtype=np.float64)
    low, high = percentile_interval(seed_replicates(replicates, rng), level)
    return {"mean": float(points.mean()), "sd": float(points.std(ddof=1)) if points.size > 1 else float("nan"),
            "low": low, "high": high}


def front_frequencies(cost: np.ndarray, error: np.ndarray, front: Callable[[np.ndarray, np.ndarray], np.ndarray],
                      knee: Callable[[np.ndarray, np.ndarray], int | None]) -> tuple[np.ndarray, np.ndarray]:
    """How often each point is on the Pareto front, and how often it is the knee, over resamples.

    ``cost`` and ``error`` are resamples x points (one row a resampled study); NaN rows are left out.
    """
    ok = ~(np.isnan(cost).any(axis=1) | np.isnan(error).any(axis=1))
    on_front = np.zeros(cost.shape[1])
    is_knee = np.zeros(cost.shape[1])
    for c, e in zip(cost[ok], error[ok], strict=True):
        on_front[front(c, e)] += 1
        k = knee(c, e)
        if k is not None:
            is_knee[k] += 1
    n = max(int(ok.sum()), 1)
    return on_front / n, is_knee / n


# --- energy and carbon: Monte Carlo draws of what the sensors and the carbon factors leave uncertain -----------

Z95 = 1.959963984540054  # a tolerance is read as the half-width of a 95 % interval of a normal error


def factor_draws(factor: Mapping, rng: np.random.Generator, n: int, key: str = "factor") -> np.ndarray:
    """Draws of a carbon factor ``{value, low, high, source}``: triangular on [low, high] with its mode at value;
    a factor without a range is exact (every draw is its value). ``key`` names it in errors."""
    value = float(factor["value"])
    if factor.get("low") is None and factor.get("high") is None:
        return np.full(n, value)
    low, high = (value if factor.get(end) is None else float(factor[end]) for end in ("low", "high"))
    if not low <= value <= high:
        raise UserError(f"{key}: low <= value <= high is needed, got low {low}, value {value}, high {high}")
    if low == high:
        return np.full(n, value)
    return rng.triangular(low, value, high, n)


def ratio_draws(value: float, low: float | None, high: float | None, rng: np.random.Generator, n: int,
                key: str) -> np.ndarray:
    """Draws of a factor with an optional range, divided by its value (1 for a value of 0)."""
    draws = factor_draws({"value": value, "low": low, "high": high}, rng, n, key=key)
    return draws / value if value else np.ones(n)


def carbon_ratio_draws(factors: Mapping, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draws of the carbon factors of :func:`svbench.energy.factors_from_config` over their values: ``pue``,
    ``intensity``, ``gpu`` and ``server`` (the embodied factors); all 1 for a factor without a range, an intensity
    series (taken as it is) or an embodied factor not given."""

    def ratio(factor: Any) -> np.ndarray:
        if factor is None or getattr(factor, "series", None) is not None:
            return np.ones(n)
        return ratio_draws(float(factor.value), factor.low, factor.high, rng, n, factor.key)

    return {"pue": ratio(factors["pue"]), "intensity": ratio(factors["intensity"]),
            "gpu": ratio(factors["gpu_kg_per_hour"]), "server": ratio(factors["server_kg_per_hour"])}


def energy_draws(by_sensor: Mapping[str, tuple[float, float]], gap_j: float, rng: np.random.Generator,
                 n: int, errors: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Draws of a job's energy: each sensor's joules with its own error, plus what the coverage gaps hide.

    ``by_sensor`` maps a sensor to (joules, tolerance), the tolerance relative, as a 95 % half-width (NVML's
    documented 5 % is 0.05). A sensor's error is one draw for all its readings of the job (a calibration error
    does not average out over time); two sensors err independently. The gaps' energy, unknown, lies anywhere
    between nothing and ``gap_j`` (the uncovered time at the mean power of the covered part). ``errors``: a
    sensor's standard-normal error draws shared with other jobs (a sum over jobs: see :func:`sensor_errors`);
    else drawn here for this job alone.
    """
    total = np.zeros(n)
    for sensor, (joules, tolerance) in by_sensor.items():
        error = errors[sensor] if errors is not None else rng.standard_normal(n)
        total += joules * (1 + tolerance / Z95 * error)
    return total + gap_j * rng.random(n)


def sensor_errors(sensors: Iterable[str], rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """One standard-normal error draw per sensor family, for a sum over many jobs: a family's calibration error
    (and the estimate's model error) is taken as the same in every job, the wide bound; drawn per job, the
    errors would cancel in the sum and the interval of a study's total would look tighter than anything known."""
    return {sensor: rng.standard_normal(n) for sensor in sorted(set(sensors))}


def measured_energy_draws(by_sensor: Mapping[str, float], gap_j: float, tolerances: Mapping[str, float],
                          rng: np.random.Generator, n: int,
                          errors: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """:func:`energy_draws` of a job's joules per sensor, each with its ``energy.<sensor>.tolerance`` (a sensor
    without one, the CPU-time estimate's)."""
    parts = {sensor: (joules, tolerances.get(sensor, tolerances["estimate"])) for sensor, joules in by_sensor.items()}
    return energy_draws(parts, gap_j, rng, n, errors)


def interval_of(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of Monte Carlo draws."""
    return percentile_interval(np.asarray(draws, dtype=np.float64), level)
