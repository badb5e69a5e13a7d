"""EER and minDCF: hand-computed cases, ties, and an independent slow implementation."""

import numpy as np
import pytest

from svbench.metrics import compute_all, det_curve, eer, min_dcf

# Convention in the hand computations: threshold t accepts score >= t.
# fnr = targets rejected / targets, fpr = non-targets accepted / non-targets.


def test_hand_computed_interpolated_eer():
    # targets {3, 5}, non-targets {1, 2, 4}
    # t:    1     2     3     4     5     inf
    # fnr:  0     0     0     1/2   1/2   1
    # fpr:  1     2/3   1/3   1/3   0     0
    # fnr-fpr crosses 0 between t=3 (0, 1/3) and t=4 (1/2, 1/3): on that segment fpr = 1/3,
    # so the crossing is at fnr = fpr = 1/3.
    scores = [1, 2, 3, 4, 5]
    labels = [0, 0, 1, 0, 1]
    assert eer(scores, labels) == pytest.approx(1 / 3)
    # p = 0.01: cost = 0.01 fnr + 0.99 fpr -> 0.99, 0.66, 0.33, 0.335, 0.005, 0.01; min 0.005.
    # Normaliser min(0.01, 0.99) = 0.01 -> 0.5.
    assert min_dcf(scores, labels, p_target=0.01) == pytest.approx(0.5)
    # p = 0.5: cost/normaliser = fnr + fpr -> 1, 2/3, 1/3, 5/6, 1/2, 1; min 1/3.
    assert min_dcf(scores, labels, p_target=0.5) == pytest.approx(1 / 3)
    # c_miss = 10, p = 0.01: cost = 0.1 fnr + 0.99 fpr -> 0.99, 0.66, 0.33, 0.38, 0.05, 0.1;
    # min 0.05, normaliser min(0.1, 0.99) = 0.1 -> 0.5.
    assert min_dcf(scores, labels, p_target=0.01, c_miss=10) == pytest.approx(0.5)


def test_hand_computed_det_curve():
    fpr, fnr, thr = det_curve([1, 2, 3, 4, 5], [0, 0, 1, 0, 1])
    np.testing.assert_allclose(thr, [1, 2, 3, 4, 5, np.inf])
    np.testing.assert_allclose(fnr, [0, 0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(fpr, [1, 2 / 3, 1 / 3, 1 / 3, 0, 0])


def test_exact_crossing_point():
    # targets {2, 4}, non-targets {1, 3}: at t=3, fnr = 1/2 = fpr -> EER exactly 0.5
    assert eer([1, 2, 3, 4], [0, 1, 0, 1]) == pytest.approx(0.5)


def test_ties_share_a_threshold():
    # targets {2, 3}, non-targets {1, 2}; the two 2s are accepted or rejected together.
    # t:   1    2    3    inf
    # fnr: 0    0    1/2  1
    # fpr: 1    1/2  0    0
    # Crossing between (0, 1/2) and (1/2, 0): the segment fnr + fpr = 1/2 meets fnr = fpr at 1/4.
    # Without tie handling the answer would be 0 or 0.5 depending on the order of the 2s.
    # p = 0.01: costs 0.99, 0.495, 0.005, 0.01 -> 0.005 / 0.01 = 0.5.
    for scores, labels in (([1, 2, 2, 3], [0, 1, 0, 1]), ([1, 2, 2, 3], [0, 0, 1, 1])):
        assert eer(scores, labels) == pytest.approx(0.25)
        assert min_dcf(scores, labels) == pytest.approx(0.5)


def test_all_scores_equal():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50)
    labels[:2] = [0, 1]
    scores = np.full(50, 0.3)
    assert eer(scores, labels) == pytest.approx(0.5)
    # only "accept all" and "reject all" exist; the better of the two costs exactly the normaliser
    assert min_dcf(scores, labels) == pytest.approx(1.0)
    assert min_dcf(scores, labels, p_target=0.7) == pytest.approx(1.0)


def test_perfectly_separable():
    scores = [0.1, 0.2, 0.3, 0.8, 0.9]
    labels = [0, 0, 0, 1, 1]
    assert eer(scores, labels) == 0.0
    assert min_dcf(scores, labels) == 0.0
    assert min_dcf(scores, labels, p_target=0.05) == 0.0


def test_perfectly_wrong():
    assert eer([0.9, 0.8, 0.1, 0.2], [0, 0, 1, 1]) == pytest.approx(1.0)


def test_bool_labels_and_lists():
    assert eer([1.0, 2.0, 3.0], [False, True, True]) == 0.0
    assert eer(np.array([1.0, 2.0, 3.0], dtype=np.float32), np.array([0.0, 1.0, 1.0])) == 0.0


def test_compute_all():
    out = compute_all([1, 2, 3, 4, 5], [0, 0, 1, 0, 1])
    assert out["eer"] == pytest.approx(1 / 3)
    assert out["min_dcf_0.01"] == pytest.approx(0.5)
    # p = 0.05: cost = 0.05 fnr + 0.95 fpr, min at t=5 = 0.025; normaliser 0.05 -> 0.5
    assert out["min_dcf_0.05"] == pytest.approx(0.5)
    assert (out["n_target"], out["n_nontarget"]) == (2, 3)
    assert "linear interpolation" in out["definition"] and "normalised NIST SRE" in out["definition"]


# --- an independent, deliberately slow implementation -------------------------------------------


def slow_det(scores, labels):
    """Loop over every distinct threshold (accept score >= t), counting directly."""
    tgt = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    non = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    points = []
    for t in sorted(set(scores)) + [float("inf")]:
        fnr = sum(s < t for s in tgt) / len(tgt)
        fpr = sum(s >= t for s in non) / len(non)
        points.append((fnr, fpr))
    return points


def slow_eer(points):
    """Walk the DET segments and solve for the one that meets fnr = fpr."""
    for (m1, f1), (m2, f2) in zip(points, points[1:], strict=False):
        d1, d2 = m1 - f1, m2 - f2
        if d1 < 0 <= d2:
            # point = P1 + a (P2 - P1) with fnr = fpr
            a = -d1 / (d2 - d1)
            return m1 + a * (m2 - m1)
    raise AssertionError("no crossing")


def slow_min_dcf(points, p, c_miss=1.0, c_fa=1.0):
    best = min(c_miss * m * p + c_fa * f * (1 - p) for m, f in points)
    return best / min(c_miss * p, c_fa * (1 - p))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("rounded", [False, True])
def test_matches_slow_implementation(seed, rounded):
    rng = np.random.default_rng(seed)
    n = 300
    labels = (rng.random(n) < 0.3).astype(int)
    scores = rng.normal(size=n) + 1.2 * labels
    if rounded:
        scores = np.round(scores, 1)  # many ties
    points = slow_det(scores.tolist(), labels.tolist())
    assert eer(scores, labels) == pytest.approx(slow_eer(points), abs=1e-12)
    for p in (0.001, 0.01, 0.05, 0.3, 0.5, 0.9):
        assert min_dcf(scores, labels, p_target=p) == pytest.approx(slow_min_dcf(points, p), abs=1e-12)
    assert min_dcf(scores, labels, 0.01, c_miss=3, c_fa=2) == pytest.approx(slow_min_dcf(points, 0.01, 3, 2), abs=1e-12)


def test_matches_wespeaker_formulas_without_ties():
    # The WeSpeaker/NIST recipe (argsort, cumulative rates, no tie merging, no accept-all point)
    # written out here; on tie-free scores it must agree exactly.
    rng = np.random.default_rng(7)
    labels = (rng.random(2000) < 0.1).astype(int)
    scores = rng.normal(size=2000) + 2 * labels
    y = labels[np.argsort(scores)]
    fnr = np.cumsum(y == 1) / np.sum(y == 1)
    fpr = 1 - np.cumsum(y == 0) / np.sum(y == 0)
    d = fnr - fpr
    x1 = np.flatnonzero(d >= 0)[0]
    x2 = np.flatnonzero(d < 0)[-1]
    a = (fnr[x1] - fpr[x1]) / (fpr[x2] - fpr[x1] - (fnr[x2] - fnr[x1]))
    ref_eer = fnr[x1] + a * (fnr[x2] - fnr[x1])
    assert eer(scores, labels) == pytest.approx(ref_eer, abs=1e-12)
    for p in (0.01, 0.05):
        ref = np.min(fnr * p + fpr * (1 - p)) / min(p, 1 - p)
        assert min_dcf(scores, labels, p_target=p) == pytest.approx(ref, abs=1e-12)


def test_order_invariant():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(size=500) + labels, 1)
    perm = rng.permutation(500)
    assert eer(scores, labels) == eer(scores[perm], labels[perm])
    assert min_dcf(scores, labels) == min_dcf(scores[perm], labels[perm])


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [eer, min_dcf, det_curve, compute_all])
def test_needs_both_classes(fn):
    with pytest.raises(ValueError, match="at least one non-target"):
        fn([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="at least one target"):
        fn([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="at least one target"):
        fn([], [])


def test_nan_and_inf_scores():
    with pytest.raises(ValueError, match="NaN"):
        eer([0.1, float("nan"), 0.3], [0, 1, 1])
    with pytest.raises(ValueError, match="infinite"):
        min_dcf([0.1, float("inf"), 0.3], [0, 1, 1])


def test_bad_labels():
    with pytest.raises(ValueError, match="labels must be 0"):
        eer([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(ValueError, match="labels must be 0"):
        eer([0.1, 0.2, 0.3], [0, 1, -1])
    with pytest.raises(ValueError, match="labels must be 0"):
        eer([0.1, 0.2], ["target", "nontarget"])


def test_shape_mismatch():
    with pytest.raises(ValueError, match="differ in length"):
        eer([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        eer([[0.1, 0.2]], [[0, 1]])


def test_bad_cost_parameters():
    for p in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="p_target"):
            min_dcf([0.1, 0.2], [0, 1], p_target=p)
    with pytest.raises(ValueError, match="positive"):
        min_dcf([0.1, 0.2], [0, 1], c_fa=0)


def test_million_trials_fast():
    import time

    rng = np.random.default_rng(0)
    labels = rng.random(10**6) < 0.5
    scores = rng.normal(size=10**6) + labels
    t0 = time.perf_counter()
    eer(scores, labels)
    min_dcf(scores, labels)
    assert time.perf_counter() - t0 < 2.0  # generous for slow CI; typically ~0.2 s
