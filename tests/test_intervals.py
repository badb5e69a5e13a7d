"""A study's accuracy intervals: per-job replicates from score files, seeds, pairs and the Pareto front."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from svbench.errors import UserError
from svbench.study.analysis import knee, pareto_front
from svbench.uncertainty.bootstrap import paired_difference, speaker_bootstrap
from svbench.uncertainty.draws import front_frequencies, seed_interval, seed_replicates
from svbench.uncertainty.score_intervals import bootstrap_scores, read_replicates


def _score_file(path: Path, rng: np.random.Generator, shift: float, speakers: int = 30) -> dict[str, str]:
    """A score file like svbench score writes (cosine and asnorm columns); returns utterance -> speaker."""
    utt_speaker = {f"id{s:03d}/v/{u:02d}.wav": f"id{s:03d}" for s in range(speakers) for u in range(6)}
    utts = list(utt_speaker)
    lines = ["label\tenroll\ttest\tcosine\tasnorm"]
    for _ in range(1500):
        enroll = utts[rng.integers(len(utts))]
        same = rng.random() < 0.4
        pool = [u for u in utts if (utt_speaker[u] == utt_speaker[enroll]) == same and u != enroll]
        test = pool[rng.integers(len(pool))]
        score = rng.normal(shift * same, 1.0)
        lines.append(f"{int(same)}\t{enroll}\t{test}\t{score:.6f}\t{score + rng.normal(0, 0.1):.6f}")
    path.write_text("\n".join(lines) + "\n")
    return utt_speaker


def test_job_replicates_match_the_bootstrap_and_share_draws_across_models(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    speakers = _score_file(tmp_path / "a.tsv", rng, 2.0)
    _score_file(tmp_path / "b.tsv", rng, 2.5)
    first = bootstrap_scores({"syn": tmp_path / "a.tsv"}, speakers, tmp_path / "a.npz", resamples=100, seed=3)
    bootstrap_scores({"syn": tmp_path / "b.tsv"}, speakers, tmp_path / "b.npz", resamples=100, seed=3)
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads(json.dumps(first))
    reps_a, reps_b = read_replicates(tmp_path / "a.npz"), read_replicates(tmp_path / "b.npz")
    assert set(reps_a) == {f"syn/{b}/{m}" for b in ("cosine", "asnorm") for m in ("eer", "min_dcf_0.01",
                                                                                   "min_dcf_0.05")}
    eer = first["syn"]["cosine"]["eer"]
    assert eer["low"] <= eer["value"] <= eer["high"] and reps_a["syn/cosine/eer"].shape == (100,)
    # the same draws for every model: a better model is better in (nearly) every resample, which
    # independent draws of two models would not give
    better = np.mean(reps_b["syn/cosine/eer"] < reps_a["syn/cosine/eer"])
    assert better > 0.95
    # the point value is the plain metric; the interval the one speaker_bootstrap gives for these trials
    import pandas as pd

    frame = pd.read_csv(tmp_path / "a.tsv", sep="\t")
    alone = speaker_bootstrap(frame["cosine"], frame["label"], frame["enroll"].map(speakers),
                              frame["test"].map(speakers), resamples=100)["eer"]
    assert alone["value"] == eer["value"]


def test_bad_score_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(UserError, match="empty.tsv: the score file is empty"):
        bootstrap_scores({"x": tmp_path / "empty.tsv"}, {}, tmp_path / "o.npz")
    (tmp_path / "s.tsv").write_text("label\tenroll\ttest\tcosine\n1\tu1\tu1\t0.5\n0\tu1\tu2\t0.1\n")
    with pytest.raises(UserError, match="'u2' is not in the evaluation manifest"):
        bootstrap_scores({"x": tmp_path / "s.tsv"}, {"u1": "s1"}, tmp_path / "o.npz")
    assert not (tmp_path / "o.npz").exists()


def test_seed_interval_holds_the_seed_spread() -> None:
    rng = np.random.default_rng(1)
    # three seeds far apart, each with a narrow speaker spread: the interval must reach across the seeds
    reps = [np.full(500, v) + rng.normal(0, 0.001, 500) for v in (0.10, 0.12, 0.14)]
    out = seed_interval(reps, [0.10, 0.12, 0.14], rng)
    assert out["mean"] == pytest.approx(0.12) and out["sd"] == pytest.approx(0.02)
    assert out["low"] < 0.11 and out["high"] > 0.13
    one = seed_interval(reps[:1], [0.10], rng)
    assert math.isnan(one["sd"]) and one["low"] == pytest.approx(0.10, abs=0.003)
    assert seed_replicates(reps, rng).shape == (500,)


def test_paired_difference_and_front_frequencies() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(0.10, 0.01, 1000)
    same = paired_difference(a, a + rng.normal(0, 0.001, 1000), 0.0)
    assert not same["significant"] and same["low"] < 0 < same["high"]
    worse = paired_difference(a, a + 0.02 + rng.normal(0, 0.001, 1000), 0.02)
    assert worse["significant"] and worse["p"] < 0.01
    # three points: 0 and 2 always on the front; 1 on it only when its error dips below 0's
    cost = np.tile([1.0, 2.0, 3.0], (1000, 1))
    error = np.column_stack([np.full(1000, 0.2), 0.2 + rng.normal(0, 0.01, 1000), np.full(1000, 0.1)])
    on_front, _ = front_frequencies(cost, error, pareto_front, knee)
    assert on_front[0] == 1.0 and on_front[2] == 1.0 and 0.4 < on_front[1] < 0.6


def test_a_constant_power_job_with_a_known_tolerance_gives_the_analytic_interval() -> None:
    from svbench.uncertainty.draws import energy_draws, interval_of

    rng = np.random.default_rng(3)
    # 300 W for 100 s on one GPU whose sensor is good to 5 %: 30 kJ, 95 % interval [28.5, 31.5] kJ
    low, high = interval_of(energy_draws({"nvml": (30_000.0, 0.05)}, 0.0, rng, 200_000))
    assert low == pytest.approx(28_500, rel=2e-3) and high == pytest.approx(31_500, rel=2e-3)
    # two independent sensors: half-widths add in quadrature (1500 and 800 J -> 1700 J)
    low, high = interval_of(energy_draws({"nvml": (30_000.0, 0.05), "rapl": (8_000.0, 0.10)}, 0.0, rng, 200_000))
    assert (high - low) / 2 == pytest.approx(1700, rel=5e-3)
    # a 10 % coverage gap can only add energy: the interval reaches up by up to the gap
    low, high = interval_of(energy_draws({"nvml": (27_000.0, 0.0)}, 3_000.0, rng, 200_000))
    assert low == pytest.approx(27_075, rel=1e-3) and high == pytest.approx(29_925, rel=1e-3)


def test_carbon_factor_ranges_are_drawn_and_checked() -> None:
    from svbench.uncertainty.draws import factor_draws

    rng = np.random.default_rng(4)
    assert (factor_draws({"value": 1.2, "source": "site"}, rng, 10) == 1.2).all()
    draws = factor_draws({"value": 56.0, "low": 21.7, "high": 57.0, "source": "RTE / Ember"}, rng, 100_000)
    assert draws.min() >= 21.7 and draws.max() <= 57.0
    assert draws.mean() == pytest.approx((21.7 + 56.0 + 57.0) / 3, rel=1e-2)  # the triangular mean
    with pytest.raises(UserError, match=r"carbon.pue: low <= value <= high"):
        factor_draws({"value": 1.2, "low": 1.3, "high": 1.5}, rng, 10, key="carbon.pue")


@pytest.mark.parametrize("section", ["uncertainty", "embedding", "scoring"])
def test_the_schema_states_the_settings_defaults_and_bounds(section: str) -> None:
    from support import assert_schema_matches

    from svbench.embedding import EmbeddingSettings
    from svbench.scoring import ScoringSettings
    from svbench.uncertainty.score_intervals import UncertaintySettings

    block = {"uncertainty": UncertaintySettings, "embedding": EmbeddingSettings, "scoring": ScoringSettings}[section]
    assert_schema_matches(block, section)
    with pytest.raises(UserError, match=rf"{section}\.nope: unknown option"):
        block.from_config({"nope": 1})
