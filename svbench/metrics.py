"""Speaker-verification metrics: EER and normalised minDCF, NIST SRE scorer definition.

The DET curve is computed the way the NIST SRE scorer (as WeSpeaker's score_metrics uses it) does it:
sort the scores, and for every threshold count the
cumulative miss rate (fnr, targets rejected) and false-alarm rate (fpr, non-targets accepted).
Two deliberate refinements, both no-ops on tie-free data:

- trials with equal scores share one threshold (accepted or rejected together), so the result
  does not depend on the order of tied trials;
- the curve starts at "accept everything" (fnr 0, fpr 1) as well as ending at "reject everything"
  (fnr 1, fpr 0), so the EER crossing always has a point on each side.

Labels: 1 = target (same speaker), 0 = non-target.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from svbench.errors import UserError

DEFINITION = "EER: linear interpolation of the DET crossing; minDCF: normalised NIST SRE (C_miss=C_fa=1)"


def checked_trials(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to (float64 scores, bool labels); raise ValueError on bad input."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1:
        raise UserError(f"scores and labels must be 1-D, got shapes {s.shape} and {y.shape}")
    if s.shape != y.shape:
        raise UserError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if np.isnan(s).any():
        raise UserError(f"scores contain {int(np.isnan(s).sum())} NaN value(s)")
    if np.isinf(s).any():
        raise UserError(f"scores contain {int(np.isinf(s).sum())} infinite value(s)")
    if y.dtype != np.bool_:
        if y.dtype.kind not in "iuf" or not ((y == 0) | (y == 1)).all():
            bad = sorted({str(v) for v in np.unique(y) if v not in (0, 1)})[:5]
            raise UserError(f"labels must be 0 (non-target) or 1 (target); found {', '.join(bad)}")
        y = y == 1
    n_tgt = int(np.count_nonzero(y))
    if n_tgt < 1:
        raise UserError("need at least one target trial (label 1), found none")
    if n_tgt == y.size:
        raise UserError("need at least one non-target trial (label 0), found none")
    return s, y


def _det(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DET points on validated input; see det_curve."""
    order = np.argsort(s)
    s, y = s[order], y[order]
    n_tgt = int(np.count_nonzero(y))
    n_non = y.size - n_tgt
    # Last index of each run of equal scores: rejecting up to there rejects the whole run.
    last = np.flatnonzero(s[1:] != s[:-1])
    last = np.append(last, s.size - 1)
    tgt_rejected = np.cumsum(y, dtype=np.int64)[last]
    non_rejected = last + 1 - tgt_rejected
    fnr = np.concatenate(([0.0], tgt_rejected / n_tgt))
    fpr = np.concatenate(([1.0], (n_non - non_rejected) / n_non))
    thresholds = np.concatenate((s[:1], s[last[:-1] + 1], [np.inf]))
    return fpr, fnr, thresholds


def det_curve(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (fpr, fnr, thresholds) over every distinct operating point.

    Point k accepts the trials with ``score >= thresholds[k]``: thresholds are the distinct
    scores in ascending order followed by +inf (reject everything). fnr rises from 0 to 1,
    fpr falls from 1 to 0.
    """
    return _det(*checked_trials(scores, labels))


def _eer(fpr: np.ndarray, fnr: np.ndarray) -> float:
    diff = fnr - fpr  # non-decreasing from -1 to 1
    x1 = int(np.argmax(diff >= 0))  # first point at or past the crossing; >= 1 since diff[0] = -1
    x2 = x1 - 1  # last point before it
    a = diff[x1] / (diff[x1] - diff[x2])
    return float(fnr[x1] + a * (fnr[x2] - fnr[x1]))


def _min_dcf(fpr: np.ndarray, fnr: np.ndarray, p_target: float, c_miss: float, c_fa: float) -> float:
    if not 0 < p_target < 1:
        raise UserError(f"p_target must be in (0, 1), got {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise UserError(f"c_miss and c_fa must be positive, got {c_miss} and {c_fa}")
    c_det = np.min(c_miss * fnr * p_target + c_fa * fpr * (1 - p_target))
    # Normalise by the best system that always accepts or always rejects.
    c_default = min(c_miss * p_target, c_fa * (1 - p_target))
    return float(c_det / c_default)


def eer(scores: ArrayLike, labels: ArrayLike) -> float:
    """Equal error rate as a fraction in [0, 1], by linear interpolation of the DET crossing."""
    fpr, fnr, _ = det_curve(scores, labels)
    return _eer(fpr, fnr)


def min_dcf(
    scores: ArrayLike,
    labels: ArrayLike,
    p_target: float = 0.01,
    c_miss: float = 1,
    c_fa: float = 1,
) -> float:
    """Normalised minimum detection cost (NIST SRE):
    min over thresholds of (C_miss·fnr·p + C_fa·fpr·(1−p)) / min(C_miss·p, C_fa·(1−p))."""
    fpr, fnr, _ = det_curve(scores, labels)
    return _min_dcf(fpr, fnr, p_target, c_miss, c_fa)


def compute_all(scores: ArrayLike, labels: ArrayLike) -> dict:
    """EER, minDCF at p_target 0.01 and 0.05, trial counts and the definition used."""
    s, y = checked_trials(scores, labels)
    fpr, fnr, _ = _det(s, y)
    n_tgt = int(np.count_nonzero(y))
    return {
        "eer": _eer(fpr, fnr),
        "min_dcf_0.01": _min_dcf(fpr, fnr, 0.01, 1, 1),
        "min_dcf_0.05": _min_dcf(fpr, fnr, 0.05, 1, 1),
        "n_target": n_tgt,
        "n_nontarget": int(y.size - n_tgt),
        "definition": DEFINITION,
    }
