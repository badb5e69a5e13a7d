"""Speaker-bootstrap intervals: exact weighted metrics, calibration on simulated studies, the paired test."""

from __future__ import annotations

import math
from math import erf, sqrt

import numpy as np
import pytest

from svbench.errors import UserError
from svbench.metrics import compute_all
from svbench.uncertainty.bootstrap import (
    Resampler,
    paired_bootstrap,
    percentile_interval,
    sort_trials,
    speaker_bootstrap,
    speaker_counts,
)

METRICS = ("eer", "min_dcf_0.01", "min_dcf_0.05")


def _random_trials(rng: np.random.Generator, speakers: int = 20, n: int = 3000, decimals: int | None = None):
    enroll = rng.integers(0, speakers, n)
    same = rng.random(n) < 0.3
    test = np.where(same, enroll, (enroll + rng.integers(1, speakers, n)) % speakers)
    scores = rng.normal(same * 1.5, 1.0)
    if decimals is not None:
        scores = np.round(scores, decimals)  # many ties
    return scores, same, enroll, test


@pytest.mark.parametrize("decimals", [None, 1])
def test_unit_and_speaker_weights_give_the_metrics_of_the_replicated_trials(decimals) -> None:
    rng = np.random.default_rng(0)
    scores, same, enroll, test = _random_trials(rng, decimals=decimals)
    trials = sort_trials(scores, same, [f"id{e:05d}" for e in enroll], [f"id{t:05d}" for t in test])
    resampler = Resampler(trials)
    plain = compute_all(scores, same)
    assert resampler.metrics(np.ones(trials.n_speakers, int)) == pytest.approx([plain[m] for m in METRICS],
                                                                              abs=1e-12)
    for _ in range(3):
        counts = speaker_counts(trials.n_speakers, 1, rng)[0]
        # speaker names sort like their numbers here, so counts[s] is the count of speaker s
        copies = np.where(same, counts[enroll], counts[enroll] * counts[test])
        replicated = compute_all(np.repeat(scores, copies), np.repeat(same, copies))
        assert resampler.metrics(counts) == pytest.approx([replicated[m] for m in METRICS], abs=1e-12)


def test_intervals_are_seeded_and_hold_the_point_estimate() -> None:
    scores, same, enroll, test = _random_trials(np.random.default_rng(1))
    first = speaker_bootstrap(scores, same, enroll, test, resamples=200, seed=5)
    assert first == speaker_bootstrap(scores, same, enroll, test, resamples=200, seed=5)
    assert first != speaker_bootstrap(scores, same, enroll, test, resamples=200, seed=6)
    for m in METRICS:
        assert first[m]["low"] <= first[m]["value"] <= first[m]["high"]
        assert first[m]["value"] == compute_all(scores, same)[m]


def test_bad_trials_are_refused() -> None:
    with pytest.raises(UserError, match="same speaker on both sides"):
        sort_trials([0.1, 0.2], [1, 0], ["a", "a"], ["b", "b"])
    with pytest.raises(UserError, match="one enrolment and one test speaker per trial"):
        sort_trials([0.1, 0.2], [1, 0], ["a"], ["a", "b"])
    assert all(math.isnan(v) for v in percentile_interval(np.array([np.nan, np.nan])))


# --- calibration: simulated studies whose speakers differ, with a known population EER -------------------------

MEAN_TARGET, MEAN_NONTARGET, SD_SPEAKER_TARGET, SD_SPEAKER_NONTARGET = 2.0, -1.0, 1.0, 0.7


def _phi(x: float) -> float:
    return 0.5 * (1 + erf(x / sqrt(2)))


# Scores are Gaussian given the speakers; over speakers, target scores are N(2, 1 + 1.0^2) and non-target
# scores N(-1, 1 + 0.7^2): the EER of the population is where the two tails are equal.
TRUE_EER = _phi(-(MEAN_TARGET - MEAN_NONTARGET) / (sqrt(1 + SD_SPEAKER_TARGET**2) + sqrt(1 + SD_SPEAKER_NONTARGET**2)))


def _trial_list(rng: np.random.Generator, speakers: int = 100, targets: int = 10, nontargets: int = 60):
    """(labels, enroll speaker, test speaker): ``targets`` target and ``nontargets`` random non-target trials
    per speaker."""
    spk = np.repeat(np.arange(speakers), targets)
    a = np.repeat(np.arange(speakers), nontargets)
    b = (a + rng.integers(1, speakers, a.size)) % speakers
    return np.r_[np.ones(spk.size), np.zeros(a.size)], np.r_[spk, a], np.r_[spk, b]


def _speaker_effects(rng: np.random.Generator, speakers: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Each speaker's target-score shift (a 'goat' scores low) and non-target shift (a 'lamb' scores high)."""
    return rng.normal(0, SD_SPEAKER_TARGET, speakers), rng.normal(0, SD_SPEAKER_NONTARGET, speakers)


def _scores(trial_list, effects, rng: np.random.Generator) -> np.ndarray:
    labels, enroll, test = trial_list
    shift_t, shift_n = effects
    target = MEAN_TARGET + shift_t[enroll] + rng.normal(0, 1, labels.size)
    nontarget = MEAN_NONTARGET + (shift_n[enroll] + shift_n[test]) / sqrt(2) + rng.normal(0, 1, labels.size)
    return np.where(labels == 1, target, nontarget)


def _study(rng: np.random.Generator):
    trial_list = _trial_list(rng)
    return (_scores(trial_list, _speaker_effects(rng), rng), *trial_list)


def _trial_bootstrap_eer(trials, scores: np.ndarray, rng: np.random.Generator, resamples: int) -> tuple:
    """What a naive bootstrap does: resample trials as if they were independent."""
    order = np.argsort(scores, kind="stable")
    resampler = Resampler(trials)
    eers = []
    for _ in range(resamples):
        weight = np.bincount(rng.integers(0, scores.size, scores.size), minlength=scores.size)[order]
        eers.append(resampler.weighted(weight.astype(np.float32))[0])
    return percentile_interval(np.array(eers))


def test_the_speaker_bootstrap_covers_the_true_eer_and_a_trial_bootstrap_does_not() -> None:
    rng = np.random.default_rng(2026)
    studies, resamples = 400, 200
    speaker_hits = trial_hits = 0
    for k in range(studies):
        scores, labels, enroll, test = _study(rng)
        eer = speaker_bootstrap(scores, labels, enroll, test, resamples=resamples, seed=k)["eer"]
        speaker_hits += eer["low"] <= TRUE_EER <= eer["high"]
        low, high = _trial_bootstrap_eer(sort_trials(scores, labels, enroll, test), scores, rng, resamples)
        trial_hits += low <= TRUE_EER <= high
    print(f"coverage: speaker bootstrap {speaker_hits / studies:.3f}, trial bootstrap {trial_hits / studies:.3f}")
    assert 0.93 <= speaker_hits / studies <= 0.97, speaker_hits / studies
    assert trial_hits / studies < 0.85, trial_hits / studies


def test_the_paired_test_rejects_two_equal_systems_at_about_its_level_and_finds_a_real_gain() -> None:
    rng = np.random.default_rng(7)
    studies, rejected, found = 400, 0, 0
    for k in range(studies):
        trial_list, shared = _trial_list(rng), _speaker_effects(rng)
        labels, enroll, test = trial_list
        # two systems equal in distribution whose errors differ per speaker, as two trainings of one model do:
        # each speaker's effect is 80 % shared, the rest its own
        effects_a, effects_b = (tuple(0.8 * s + 0.6 * own for s, own in zip(shared, _speaker_effects(rng),
                                                                            strict=True)) for _ in range(2))
        scores_a, scores_b = _scores(trial_list, effects_a, rng), _scores(trial_list, effects_b, rng)
        diff = paired_bootstrap(scores_a, scores_b, labels, enroll, test, resamples=200, seed=k)["eer"]
        rejected += not diff["low"] <= 0 <= diff["high"]
        if k < 40:
            better = scores_b + 1.0 * labels  # the same system with targets scored higher
            gain = paired_bootstrap(scores_a, better, labels, enroll, test, resamples=200, seed=k)["eer"]
            found += gain["high"] < 0 and gain["p"] < 0.05
    print(f"false positives {rejected / studies:.3f}, gains found {found}/40")
    assert 0.02 <= rejected / studies <= 0.09, rejected / studies
    assert found >= 36, found
