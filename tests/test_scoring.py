"""Cosine and AS-norm scoring against direct, loop-based computations."""

from dataclasses import dataclass

import numpy as np
import pytest

from svbench.scoring import as_norm, cohort_stats, cosine_scores, normalize, score_trials, speaker_means


@dataclass
class Trial:  # duck-typed stand-in for svbench.corpus.manifest.Trial
    label: int
    enroll: str
    test: str


def unit(v):
    return v / np.sqrt(np.sum(v * v))


def direct_cosine(a, b, mean=None):
    if mean is not None:
        a, b = a - mean, b - mean
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def direct_asnorm(e, t, cohort, mean, top_n):
    """Loop-based AS-norm for one trial."""
    e, t = unit(e - mean), unit(t - mean)
    c = [unit(x - mean) for x in cohort]
    s = float(np.dot(e, t))

    def stats(x):
        top = sorted((float(np.dot(x, y)) for y in c), reverse=True)[:top_n]
        mu = sum(top) / len(top)
        sd = (sum((v - mu) ** 2 for v in top) / len(top)) ** 0.5
        return mu, sd

    (me, se), (mt, st) = stats(e), stats(t)
    return 0.5 * ((s - me) / se + (s - mt) / st)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    ids = [f"spk{i % 4}/utt{i}.wav" for i in range(12)]
    emb = rng.normal(size=(12, 16)) + 3.0  # a large common offset, so mean subtraction matters
    mean = emb.mean(axis=0) + 0.1 * rng.normal(size=16)
    cohort = rng.normal(size=(20, 16)) + 3.0
    trials = [Trial(int(ids[i][3] == ids[j][3]), ids[i], ids[j]) for i in range(12) for j in range(12) if i < j]
    return ids, emb, mean, cohort, trials


def test_cosine_equals_direct(data):
    _, emb, mean, _, _ = data
    got = cosine_scores(emb[:6], emb[6:], mean)
    want = [direct_cosine(emb[i], emb[6 + i], mean) for i in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    got = cosine_scores(emb[:6], emb[6:])
    np.testing.assert_allclose(got, [direct_cosine(emb[i], emb[6 + i]) for i in range(6)], rtol=1e-12)


def test_mean_subtraction_matters(data):
    _, emb, mean, _, _ = data
    with_mean = cosine_scores(emb[:6], emb[6:], mean)
    without = cosine_scores(emb[:6], emb[6:])
    assert without.min() > 0.8  # the common offset dominates
    assert np.abs(with_mean - without).max() > 0.3


def test_score_trials_cosine_dict_and_matrix(data):
    ids, emb, mean, _, trials = data
    want = [direct_cosine(emb[ids.index(t.enroll)], emb[ids.index(t.test)], mean) for t in trials]
    by_dict = score_trials(dict(zip(ids, emb, strict=True)), trials, mean=mean)
    by_matrix = score_trials((ids, emb), trials, mean=mean)
    np.testing.assert_allclose(by_dict, want, rtol=1e-12)
    np.testing.assert_allclose(by_matrix, want, rtol=1e-12)


def test_score_trials_float32_input(data):
    ids, emb, mean, _, trials = data
    got = score_trials((ids, emb.astype(np.float32)), trials, mean=mean.astype(np.float32))
    want = score_trials((ids, emb), trials, mean=mean)
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("top_n", [2, 5, 20, 300])  # 20 = cohort size, 300 > cohort size
def test_asnorm_equals_direct(data, top_n):
    ids, emb, mean, cohort, trials = data
    want = [direct_asnorm(emb[ids.index(t.enroll)], emb[ids.index(t.test)], cohort, mean, top_n) for t in trials]
    got = score_trials((ids, emb), trials, mean=mean, backend="asnorm", cohort=cohort, top_n=top_n)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    pairs = as_norm(emb[:6], emb[6:], cohort, mean=mean, top_n=top_n)
    np.testing.assert_allclose(
        pairs, [direct_asnorm(emb[i], emb[6 + i], cohort, mean, top_n) for i in range(6)], rtol=1e-10
    )


def test_top_n_beyond_cohort_is_snorm(data):
    # capped at the cohort size: top_n 300 on a cohort of 20 equals using all 20
    ids, emb, mean, cohort, trials = data
    a = score_trials((ids, emb), trials, mean=mean, backend="asnorm", cohort=cohort, top_n=300)
    b = score_trials((ids, emb), trials, mean=mean, backend="asnorm", cohort=cohort, top_n=20)
    np.testing.assert_array_equal(a, b)


def test_cohort_stats_chunking(monkeypatch):
    import svbench.scoring as scoring

    rng = np.random.default_rng(1)
    x, c = normalize(rng.normal(size=(50, 8))), normalize(rng.normal(size=(30, 8)))
    whole = cohort_stats(x, c, 7)
    monkeypatch.setattr(scoring, "_CHUNK", 3)
    np.testing.assert_allclose(cohort_stats(x, c, 7), whole, rtol=1e-14)


def test_speaker_means():
    names, m = speaker_means(np.array([[1.0, 0], [3, 0], [0, 2]]), ["b", "b", "a"])
    assert names == ["a", "b"]
    np.testing.assert_allclose(m, [[0, 2], [2, 0]])


def test_unknown_utterance_is_named(data):
    ids, emb, _, _, trials = data
    bad = trials[:3] + [Trial(1, ids[0], "id99999/nowhere/00001.wav")]
    with pytest.raises(ValueError, match="id99999/nowhere/00001.wav") as err:
        score_trials((ids, emb), bad)
    assert "trial 4" in str(err.value)


def test_input_errors(data):
    ids, emb, mean, cohort, trials = data
    with pytest.raises(ValueError, match="unknown scoring backend"):
        score_trials((ids, emb), trials, backend="plda")
    with pytest.raises(ValueError, match="needs a cohort"):
        score_trials((ids, emb), trials, backend="asnorm")
    with pytest.raises(ValueError, match="more than one embedding"):
        score_trials((ids + ids[:1], np.vstack([emb, emb[:1]])), trials)
    with pytest.raises(ValueError, match="shape"):
        score_trials((ids[:-1], emb), trials)
    with pytest.raises(ValueError, match="zero-length"):
        cosine_scores(emb[:2], np.vstack([emb[2], mean]), mean)
    with pytest.raises(ValueError, match="top_n"):
        as_norm(emb[:2], emb[2:4], cohort, top_n=1)
    with pytest.raises(ValueError, match="at least 2"):
        as_norm(emb[:2], emb[2:4], cohort[:1])
    with pytest.raises(ValueError, match="mean has shape"):
        cosine_scores(emb[:2], emb[2:4], mean[:3])


def test_no_trials(data):
    ids, emb, _, _, _ = data
    assert score_trials((ids, emb), []).shape == (0,)


def test_scoring_settings_come_from_the_config_block_and_name_the_key() -> None:
    import pytest

    from svbench.errors import UserError
    from svbench.scoring import ScoringSettings

    assert ScoringSettings.from_config({}).top_n == 300
    assert ScoringSettings.from_config({"top_n": 10}).top_n == 10
    for block, key in (({"top_n": 1}, "scoring.top_n"), ({"top_n": "5"}, "scoring.top_n"), ({"n": 3}, "scoring.n")):
        with pytest.raises(UserError, match=key):
            ScoringSettings.from_config(block)
