"""Confidence intervals for EER and minDCF by resampling speakers, and a paired test between two systems.

Trials share speakers: every trial of a hard speaker is hard. Resampling trials as if they were independent
gives intervals that are too narrow; the unit to resample is the speaker. One resample draws the evaluation
speakers with replacement (speaker ``s`` drawn ``k_s`` times) and keeps their trials: a target trial of ``s``
counts ``k_s`` times, a non-target trial between ``a`` and ``b`` counts ``k_a * k_b`` times (the trial is in
the resampled set once for every pair of copies of its two speakers). The metrics of a resample are those of
the weighted trial set; the interval is the percentile interval of the resampled metrics.

The scores are sorted once. A resample only changes the weights: two gathers and two cumulative sums over the
sorted trials, the EER by bisection on the monotone DET curve, each minDCF as one pass. Weights are small
integers, so their float32 sums are exact below 2**24; a larger total falls back to float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from svbench.errors import UserError
from svbench.metrics import checked_trials, compute_all
from svbench.typed_config import schema_default

RESAMPLES: int = schema_default("uncertainty.resamples")  # speaker-bootstrap resamples by default
LEVEL: float = schema_default("uncertainty.level")  # the intervals' level by default

METRICS = ("eer", "min_dcf_0.01", "min_dcf_0.05")
P_TARGETS = {"min_dcf_0.01": 0.01, "min_dcf_0.05": 0.05}
METHOD = ("speaker bootstrap: evaluation speakers drawn with replacement, each keeping its trials (a target "
          "trial weighted k_s, a non-target trial k_a*k_b); 95 % percentile interval")
EXACT_FLOAT32 = 2**24  # integers below this add exactly in float32


@dataclass(frozen=True)
class SortedTrials:
    """The trials in ascending score order, and what every resample reuses."""

    enroll: np.ndarray  # speaker number of the enrolment side, per sorted trial
    second: np.ndarray  # speaker number of the test side, or n_speakers (a factor 1) for a target trial
    target: np.ndarray  # 1.0 for a target trial, per sorted trial (float32)
    run_end: np.ndarray | None  # last trial of each run of equal scores; None when no two scores tie
    n_speakers: int

    @property
    def size(self) -> int:
        return self.enroll.size


def sort_trials(scores: ArrayLike, labels: ArrayLike, enroll_speakers: ArrayLike,
                test_speakers: ArrayLike) -> SortedTrials:
    """Sort the trials once; speakers are any labels (names), one per side of each trial."""
    s, y = checked_trials(scores, labels)
    enroll_speakers, test_speakers = np.asarray(enroll_speakers), np.asarray(test_speakers)
    if enroll_speakers.shape != s.shape or test_speakers.shape != s.shape:
        raise UserError(f"one enrolment and one test speaker per trial: {s.size} trials, "
                        f"{enroll_speakers.size} and {test_speakers.size} speakers")
    names, numbers = np.unique(np.concatenate([enroll_speakers, test_speakers]), return_inverse=True)
    enroll, test = numbers[: s.size], numbers[s.size:]
    if (enroll[y] != test[y]).any():
        raise UserError("a target trial (label 1) must have the same speaker on both sides")
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    ties = s[1:] == s[:-1]
    run_end = np.append(np.flatnonzero(~ties), s.size - 1) if ties.any() else None
    return SortedTrials(enroll=enroll[order], second=np.where(y, len(names), test[order]),
                        target=y.astype(np.float32), run_end=run_end, n_speakers=len(names))


class Resampler:
    """The metrics of one weighting of the sorted trials, in preallocated buffers."""

    def __init__(self, trials: SortedTrials) -> None:
        self.trials = trials
        self.buffers = {dtype: [np.empty(trials.size, dtype) for _ in range(4)] for dtype in (np.float32, np.float64)}
        self.cost = [np.empty(trials.size, np.float64) for _ in range(2)]  # minDCF in float64: it is divided by p

    def metrics(self, counts: np.ndarray) -> tuple[float, float, float]:
        """(EER, minDCF 0.01, minDCF 0.05) with speaker ``s`` counted ``counts[s]`` times."""
        tr = self.trials
        factors = np.append(counts, 1).astype(np.float32)
        weight, scratch = self.buffers[np.float32][:2]
        np.take(factors, tr.enroll, out=weight)
        np.take(factors, tr.second, out=scratch)
        np.multiply(weight, scratch, out=weight)
        return self.weighted(weight)

    def weighted(self, weight: np.ndarray) -> tuple[float, float, float]:
        """(EER, minDCF 0.01, minDCF 0.05) with sorted trial ``i`` counted ``weight[i]`` times (integers)."""
        tr = self.trials
        dtype = np.float32 if float(weight.sum(dtype=np.float64)) < EXACT_FLOAT32 else np.float64
        scratch, rejected, tgt_rejected = self.buffers[dtype][1:]
        weight = weight.astype(dtype, copy=False)
        np.cumsum(weight, out=rejected)
        np.multiply(weight, tr.target, out=scratch)
        np.cumsum(scratch, out=tgt_rejected)
        if tr.run_end is not None:  # only the end of a run of tied scores is an operating point
            rejected, tgt_rejected = rejected[tr.run_end], tgt_rejected[tr.run_end]
        n_tgt, n_all = float(tgt_rejected[-1]), float(rejected[-1])
        n_non = n_all - n_tgt
        if n_tgt == 0 or n_non == 0:
            return math.nan, math.nan, math.nan
        dcf = [self._min_dcf(p, rejected, tgt_rejected, n_tgt, n_non) for p in P_TARGETS.values()]
        return (_eer(rejected, tgt_rejected, n_tgt, n_non), *dcf)

    def _min_dcf(self, p: float, rejected: np.ndarray, tgt_rejected: np.ndarray, n_tgt: float,
                 n_non: float) -> float:
        # p*fnr + (1-p)*fpr = (1-p) + tgt_rejected*(p/n_tgt + (1-p)/n_non) - rejected*(1-p)/n_non
        cost, term = (c[: rejected.size] for c in self.cost)
        # float64 factors: a Python float would let numpy multiply in float32 and only store in float64
        np.multiply(tgt_rejected, np.float64(p / n_tgt + (1 - p) / n_non), out=cost)
        np.multiply(rejected, np.float64((1 - p) / n_non), out=term)
        cost -= term
        c_det = min(0.0, float(cost.min())) + (1 - p)  # 0.0: the point that accepts every trial
        return c_det / min(p, 1 - p)


def _eer(rejected: np.ndarray, tgt_rejected: np.ndarray, n_tgt: float, n_non: float) -> float:
    """The DET crossing by bisection (fnr - fpr rises with the threshold), interpolated as metrics._eer does."""

    def point(i: int) -> tuple[float, float]:  # (fnr, fpr) of operating point i; -1 accepts every trial
        if i < 0:
            return 0.0, 1.0
        return float(tgt_rejected[i]) / n_tgt, 1.0 - float(rejected[i] - tgt_rejected[i]) / n_non

    lo, hi = 0, rejected.size - 1  # the last point rejects everything: fnr 1, fpr 0
    while lo < hi:
        mid = (lo + hi) // 2
        fnr, fpr = point(mid)
        lo, hi = (lo, mid) if fnr - fpr >= 0 else (mid + 1, hi)
    (fnr1, fpr1), (fnr2, fpr2) = point(lo), point(lo - 1)
    d1, d2 = fnr1 - fpr1, fnr2 - fpr2
    return fnr1 + d1 / (d1 - d2) * (fnr2 - fnr1)


def speaker_counts(n_speakers: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each speaker is drawn in each resample (resamples x speakers), drawing with replacement."""
    return rng.multinomial(n_speakers, np.full(n_speakers, 1.0 / n_speakers), size=resamples)


def resampled_metrics(trials: SortedTrials, counts: np.ndarray) -> dict[str, np.ndarray]:
    """The metrics of every resample, one per row of ``counts`` (NaN where a resample lost all targets)."""
    resampler = Resampler(trials)
    values = np.array([resampler.metrics(row) for row in counts]).reshape(len(counts), len(METRICS))
    return {m: values[:, k] for k, m in enumerate(METRICS)}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of the resampled values (NaN resamples left out)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def speaker_bootstrap(scores: ArrayLike, labels: ArrayLike, enroll_speakers: ArrayLike, test_speakers: ArrayLike,
                      resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> dict[str, dict[str, float]]:
    """Each metric with its speaker-bootstrap interval: ``{"eer": {"value", "low", "high"}, ...}``."""
    point = compute_all(scores, labels)
    trials = sort_trials(scores, labels, enroll_speakers, test_speakers)
    spread = resampled_metrics(trials, speaker_counts(trials.n_speakers, resamples, np.random.default_rng(seed)))
    out = {}
    for m in METRICS:
        low, high = percentile_interval(spread[m], level)
        out[m] = {"value": point[m], "low": low, "high": high}
    return out


def paired_bootstrap(scores_a: ArrayLike, scores_b: ArrayLike, labels: ArrayLike, enroll_speakers: ArrayLike,
                     test_speakers: ArrayLike, resamples: int = RESAMPLES, level: float = LEVEL,
                     seed: int = 0) -> dict[str, dict[str, float]]:
    """B minus A on the same trials, every resample drawing the same speakers for both systems.

    Per metric: the difference, its interval, and a two-sided p value (twice the smaller share of resampled
    differences on either side of zero); a difference is significant when its interval excludes zero.
    """
    point_a, point_b = compute_all(scores_a, labels), compute_all(scores_b, labels)
    a = sort_trials(scores_a, labels, enroll_speakers, test_speakers)
    b = sort_trials(scores_b, labels, enroll_speakers, test_speakers)
    counts = speaker_counts(a.n_speakers, resamples, np.random.default_rng(seed))
    spread_a, spread_b = resampled_metrics(a, counts), resampled_metrics(b, counts)
    return {m: paired_difference(spread_a[m], spread_b[m], point_b[m] - point_a[m], level) for m in METRICS}


def paired_difference(a: np.ndarray, b: np.ndarray, point: float, level: float = LEVEL) -> dict:
    """B minus A from replicates drawn with the same speakers: the difference, its interval, a two-sided p value
    (twice the smaller share of resampled differences on either side of zero), whether the interval excludes
    zero, and the number of resamples it was made of."""
    delta = np.asarray(b) - np.asarray(a)
    delta = delta[~np.isnan(delta)]
    low, high = percentile_interval(delta, level)
    p = min(1.0, 2 * min(np.mean(delta <= 0), np.mean(delta >= 0))) if delta.size else math.nan
    return {"value": point, "low": low, "high": high, "p": float(p), "significant": bool(low > 0 or high < 0),
            "resamples": int(delta.size)}
