"""Accuracy intervals of a study: speaker-bootstrap replicates per job, then seeds, pairs and the Pareto front.

Per job (architecture, seed), :func:`bootstrap_scores` resamples the evaluation speakers of each trial list and
keeps, for every back-end and metric, the metric of each resample. The draws depend only on the list and the
study's bootstrap seed, never on the model, so resample ``b`` holds the same speakers for every job: the
difference of two jobs' replicates is a paired bootstrap of their difference, and replicates of several seeds
can be averaged resample by resample.

Across seeds, :func:`seed_interval` resamples the seeds too (hierarchical bootstrap: seeds with replacement,
then speakers), so the interval holds both the run-to-run spread and the speakers' sampling.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.bootstrap import (  # noqa: F401  (LEVEL re-exported: the study's modules take it from here)
    LEVEL,
    METHOD,
    METRICS,
    RESAMPLES,
    percentile_interval,
    resampled_metrics,
    sort_trials,
    speaker_counts,
)
from svbench.errors import UserError
from svbench.fileio import atomic_write, write_text_atomic
from svbench.metrics import compute_all
from svbench.typed_config import parse_block, schema_field


@dataclass(frozen=True)
class UncertaintySettings:
    """The config's ``uncertainty:`` block."""

    resamples: int = schema_field("uncertainty.resamples")
    level: float = schema_field("uncertainty.level")
    seed: int = schema_field("uncertainty.seed")

    @classmethod
    def from_config(cls, block: dict) -> UncertaintySettings:
        """The settings of an ``uncertainty:`` block (as JSON on the command line); UserError naming the key."""
        return parse_block(cls, block, "uncertainty")


def _list_rng(seed: int, list_name: str) -> np.random.Generator:
    """The draws of one trial list: the same for every job of a study."""
    return np.random.default_rng([seed, zlib.crc32(list_name.encode())])


def read_scores(path: Path) -> pd.DataFrame:
    """A score file of ``svbench score``: label, enroll, test and one column per back-end."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, sep="\t", dtype={"enroll": str, "test": str}, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the score file is empty") from None
    missing = {"label", "enroll", "test"} - set(frame.columns)
    if missing or len(frame.columns) < 4:
        raise UserError(f"{path}: not a score file of svbench score (columns {list(frame.columns)})")
    if not len(frame):
        raise UserError(f"{path}: the score file has a header and no trial")
    for column in ["label", *frame.columns[3:]]:  # every cell a finite number, the label 0 or 1; the line named
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if column == "label":
            bad |= ~np.isin(values, (0.0, 1.0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            want = "0 or 1" if column == "label" else "a finite number"
            raise UserError(f"{path}:{row + 2}: column {column!r} must be {want}, got {frame[column].iloc[row]!r}")
        frame[column] = values.astype(np.int64) if column == "label" else values
    return frame


def bootstrap_scores(score_files: Mapping[str, Path], speakers: Mapping[str, str], out: Path,
                     resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> dict:
    """Replicates of every list x back-end x metric into ``out`` (npz); returns the intervals.

    ``speakers`` maps each utterance of the lists to its speaker (the evaluation manifest).
    """
    arrays: dict[str, np.ndarray] = {}
    summary: dict = {"resamples": resamples, "seed": seed, "level": level, "method": METHOD}
    for name, path in score_files.items():
        frame = read_scores(path)
        unknown = sorted(set(frame["enroll"]).union(frame["test"]) - set(speakers))
        if unknown:
            raise UserError(f"{path}: utterance {unknown[0]!r} is not in the evaluation manifest")
        enroll = frame["enroll"].map(speakers).to_numpy()
        test = frame["test"].map(speakers).to_numpy()
        labels = frame["label"].to_numpy()
        counts = None
        for backend in frame.columns[3:]:
            scores = frame[backend].to_numpy(dtype=np.float64)
            try:  # the metrics' own checks (both classes present, ...) name no file: this one does
                trials = sort_trials(scores, labels, enroll, test)
                if counts is None:
                    counts = speaker_counts(trials.n_speakers, resamples, _list_rng(seed, name))
                point, spread = compute_all(scores, labels), resampled_metrics(trials, counts)
            except ValueError as exc:
                raise UserError(f"{path}: {backend}: {exc}") from None
            for m in METRICS:
                arrays[f"{name}/{backend}/{m}"] = spread[m]
                low, high = percentile_interval(spread[m], level)
                summary.setdefault(name, {}).setdefault(backend, {})[m] = {"value": point[m], "low": low,
                                                                           "high": high}
    with atomic_write(out, "wb") as f:
        np.savez(f, **arrays)
    write_text_atomic(Path(out).with_suffix(".json"), json.dumps(summary, indent=2))
    return summary


def read_replicates(path: Path) -> dict[str, np.ndarray]:
    """The replicates of one job: ``{"list/backend/metric": array}``; UserError naming a missing, empty,
    truncated or damaged file (``svbench intervals`` writes it again)."""
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise UserError(f"{path}: no speaker-bootstrap replicates (run svbench intervals for this job)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise UserError(f"{path}: damaged speaker-bootstrap replicates ({type(exc).__name__}: {exc}); run svbench "
                        "intervals for this job again") from None


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


def energy_draws(by_sensor: Mapping[str, tuple[float, float]], gap_j: float, rng: np.random.Generator,
                 n: int) -> np.ndarray:
    """Draws of a job's energy: each sensor's joules with its own error, plus what the coverage gaps hide.

    ``by_sensor`` maps a sensor to (joules, tolerance), the tolerance relative, as a 95 % half-width (NVML's
    documented 5 % is 0.05). A sensor's error is one draw for all its readings of the job (a calibration error
    does not average out over time); two sensors err independently. The gaps' energy, unknown, lies anywhere
    between nothing and ``gap_j`` (the uncovered time at the mean power of the covered part).
    """
    total = np.zeros(n)
    for joules, tolerance in by_sensor.values():
        total += joules * (1 + tolerance / Z95 * rng.standard_normal(n))
    return total + gap_j * rng.random(n)


def interval_of(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of Monte Carlo draws."""
    return percentile_interval(np.asarray(draws, dtype=np.float64), level)


def bootstrap_job(score_files: Mapping[str, Path], manifest: Path, out: Path, settings: UncertaintySettings) -> dict:
    """``svbench intervals``: the replicates of one job's score files, speakers from the evaluation manifest."""
    from svbench.corpus.manifest import read_manifest

    speakers = {utt.utt: utt.speaker for utt in read_manifest(manifest)}
    return bootstrap_scores(score_files, speakers, out, settings.resamples, settings.seed, settings.level)
