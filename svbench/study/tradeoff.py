"""The accuracy–energy trade-off under uncertainty.

Over the resampled studies of :func:`svbench.uncertainty.study_draws.resampled_studies` (per architecture its seeds
drawn with replacement, then the evaluation speakers, the sensors' errors and the carbon factors), the
headline EER (cosine, first trial list) against the training energy:

- ``pareto.csv``: how often each architecture is on the Pareto front and how often it is the knee
  (:func:`svbench.study.analysis.knee`), beside whether the point estimates (means over seeds) put it there;
- ``differences.csv``: each architecture against the reference (the knee of the means, else the most accurate
  architecture) and each step along the front of the means: the paired ΔEER and ΔminDCF (the same speakers in
  both, :func:`svbench.uncertainty.bootstrap.paired_difference`) and the training-energy ratio, each with its interval.
  ``significant`` means the ΔEER interval excludes zero. With large-margin fine-tuning, each fine-tuned model
  against its trained backbone too, with the extra training energy and the EER points gained per extra kWh.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from svbench.layout import Layout, Model
from svbench.study.analysis import knee, pareto_front, primary_eer_column
from svbench.uncertainty.bootstrap import paired_difference, percentile_interval
from svbench.uncertainty.draws import front_frequencies, resampled_mean
from svbench.uncertainty.score_intervals import UncertaintySettings
from svbench.uncertainty.study_draws import StudyDraws, resampled_studies

COST = "train_energy_kwh"

log = logging.getLogger("svbench.study")


def _resampled(layout: Layout, frame: pd.DataFrame, draws: StudyDraws, settings: UncertaintySettings,
               columns: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per architecture, the resampled means of ``columns`` (those it has replicates of)."""
    out = {}
    for arch, chosen, replicates in resampled_studies(layout, frame, draws, settings.seed):
        out[arch] = {c: resampled_mean(replicates[c], chosen) for c in columns if c in replicates}
    return out


def tradeoff_tables(layout: Layout, frame: pd.DataFrame, draws: StudyDraws,
                    settings: UncertaintySettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(pareto, differences)`` of a study summary (see the module doc); empty tables without intervals."""
    if not len(frame):
        return pd.DataFrame(), pd.DataFrame()
    eer = primary_eer_column(frame)
    dcf = eer.replace("eer_", "min_dcf_0.01_", 1)
    means = frame.groupby("arch", sort=False)[[COST, eer, dcf]].mean()
    resampled = _resampled(layout, frame, draws, settings, [COST, eer, dcf])
    pareto = pareto_table(means, resampled, eer)
    pareto.insert(pareto.columns.get_loc("resamples"), "seeds", frame.groupby("arch", sort=False).size().to_numpy())
    return pareto, differences_table(means, resampled, eer, dcf, settings.level)


def pareto_table(means: pd.DataFrame, resampled: dict, eer: str) -> pd.DataFrame:
    """Per architecture: on the front and the knee of the means, and their frequencies over resamples."""
    archs = list(means.index)
    cost, error = means[COST].to_numpy(float), means[eer].to_numpy(float)
    front, k = set(pareto_front(cost, error)), knee(cost, error)
    table = pd.DataFrame({"arch": archs, "train_energy_kwh": cost, "eer": error,
                          "pareto_optimal": [i in front for i in range(len(archs))],
                          "knee": [i == k for i in range(len(archs))],
                          "p_pareto": math.nan, "p_knee": math.nan, "resamples": 0})
    # an architecture without a point estimate (a metrics.json without the EER, no training energy) or without
    # resamples is a gap, not a contender: labelled with its reason, never ranked (its replicates alone must not)
    reasons = {a: _not_ranked(c, e, resampled.get(a, {}), eer)
               for a, c, e in zip(archs, cost, error, strict=True)}
    table["not_ranked"] = [reasons[a] for a in archs]
    for a, reason in reasons.items():
        if reason:
            log.warning("%s: not ranked over resampled studies: %s", a, reason)
    usable = [a for a in archs if not reasons[a]]
    if len(usable) >= 1:
        n = min(len(resampled[a][COST]) for a in usable)
        c = np.column_stack([resampled[a][COST][:n] for a in usable])
        e = np.column_stack([resampled[a][eer][:n] for a in usable])
        on_front, is_knee = front_frequencies(c, e, pareto_front, knee)
        at = [archs.index(a) for a in usable]
        table.loc[at, "p_pareto"], table.loc[at, "p_knee"] = on_front, is_knee
        table.loc[at, "resamples"] = int((~(np.isnan(c).any(axis=1) | np.isnan(e).any(axis=1))).sum())
    return table


def _not_ranked(cost: float, error: float, resampled: dict[str, np.ndarray], eer: str) -> str | None:
    """Why an architecture gets no Pareto frequency, from what is missing; None when it is ranked."""
    if not math.isfinite(error):
        return f"no finite EER ({eer}) in its metrics.json"
    if not math.isfinite(cost):
        return "no measured training energy"
    if eer not in resampled or np.isnan(resampled[eer]).all():
        return "no speaker-bootstrap replicates (intervals.npz) for every seed"
    if COST not in resampled or np.isnan(resampled[COST]).all():
        return "no draws of its training energy (a seed without a measured training)"
    return None


def reference_arch(means: pd.DataFrame, eer: str) -> str | None:
    """The knee of the means, else the most accurate architecture with a training energy."""
    cost, error = means[COST].to_numpy(float), means[eer].to_numpy(float)
    k = knee(cost, error)
    if k is not None:
        return str(means.index[k])
    ok = np.isfinite(error) & np.isfinite(cost)
    return str(means.index[np.flatnonzero(ok)[np.argmin(error[ok])]]) if ok.any() else None


def _comparison(means: pd.DataFrame, resampled: dict, a: str, b: str, eer: str, dcf: str, level: float,
                kind: str) -> dict:
    """B against A: ΔEER (pp) and ΔminDCF paired, and the training-energy ratio B/A, with intervals."""
    row: dict = {"comparison": kind, "arch": b, "against": a}
    for name, col in (("delta_eer_pp", eer), ("delta_min_dcf", dcf)):
        point = float(means.at[b, col] - means.at[a, col])
        if col in resampled.get(a, {}) and col in resampled.get(b, {}):
            found = paired_difference(resampled[a][col], resampled[b][col], point, level)
        else:
            found = {"value": point, "low": math.nan, "high": math.nan, "p": math.nan, "significant": None,
                     "resamples": 0}
        row |= {name: found["value"], f"{name}_low": found["low"], f"{name}_high": found["high"]}
        if name == "delta_eer_pp":  # p resolves 1/resamples of this pair, not of the Pareto table
            row |= {"p": found["p"], "significant": found["significant"], "resamples": found["resamples"]}
    row["energy_ratio"] = float(means.at[b, COST] / means.at[a, COST]) if means.at[a, COST] > 0 else math.nan
    low = high = math.nan
    if COST in resampled.get(a, {}) and COST in resampled.get(b, {}):
        with np.errstate(divide="ignore", invalid="ignore"):
            low, high = percentile_interval(resampled[b][COST] / resampled[a][COST], level)
    row |= {"energy_ratio_low": low, "energy_ratio_high": high}
    return row


def differences_table(means: pd.DataFrame, resampled: dict, eer: str, dcf: str, level: float) -> pd.DataFrame:
    """Every architecture against the reference, then each step along the front of the means."""
    reference = reference_arch(means, eer)
    rows = []
    if reference is not None:
        rows += [_comparison(means, resampled, reference, b, eer, dcf, level, "against the reference")
                 for b in means.index if b != reference]
    front = [str(means.index[i]) for i in pareto_front(means[COST].to_numpy(float), means[eer].to_numpy(float))]
    rows += [_comparison(means, resampled, a, b, eer, dcf, level, "next on the front")
             for a, b in zip(front, front[1:], strict=False)]
    tuned = [(Model.named(b).backbone, b) for b in means.index if Model.named(b).fine_tuned]
    rows += [_comparison(means, resampled, a, b, eer, dcf, level, FINE_TUNING)
             | _gain_per_kwh(means, resampled, a, b, eer, level) for a, b in tuned if a in means.index]
    return pd.DataFrame(rows)


FINE_TUNING = "large-margin fine-tuning"  # the comparison of a fine-tuned model with its trained backbone


def _gain_per_kwh(means: pd.DataFrame, resampled: dict, a: str, b: str, eer: str, level: float) -> dict:
    """What B's extra training over A buys: the extra kWh, and the EER points gained (A − B) per extra kWh,
    each with its interval over the resampled studies."""
    extra = float(means.at[b, COST] - means.at[a, COST])
    gain = float(means.at[a, eer] - means.at[b, eer]) / extra if extra > 0 else math.nan
    row = {"extra_train_kwh": extra, "eer_pp_per_extra_kwh": gain}
    bounds = {k: (math.nan, math.nan) for k in row}
    if all(c in resampled.get(x, {}) for c in (COST, eer) for x in (a, b)):
        more = resampled[b][COST] - resampled[a][COST]
        with np.errstate(divide="ignore", invalid="ignore"):
            per_kwh = np.where(more > 0, (resampled[a][eer] - resampled[b][eer]) / more, np.nan)
        bounds = {"extra_train_kwh": percentile_interval(more, level),
                  "eer_pp_per_extra_kwh": percentile_interval(per_kwh, level)}
    for name, (low, high) in bounds.items():
        row |= {f"{name}_low": low, f"{name}_high": high}
    return row
