"""What the study concludes: Pareto front, knee, per-architecture means, and the training-energy model.

Knee: on the Pareto front of (training energy, error), energy taken on a log scale, both axes scaled
to [0, 1] between the cheapest and the most accurate Pareto point; the knee is the Pareto point
farthest above the chord joining those two ends (the maximum of Kneedle's difference curve,
Satopää et al. 2011). Beyond it, each decade of energy buys less accuracy than the chord's average.

Energy model: training energy E (J) ≈ a · (MACs per sample × samples per epoch × epochs) + b, with
a, b ≥ 0 (non-negative least squares); b is the per-job constant (start-up, data loading, I/O).
Its error is measured leave-one-architecture-out: every seed of one architecture is left out of
the fit and predicted by the others. A row whose training energy is missing, not finite or ≤ 0 (or whose
work is) is left out and named with its reason; every refusal says how many architectures were usable of
those given and why the others were not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from svbench.errors import UserError
from svbench.fileio import read_table
from svbench.models.spec import MACS_FRAMES


def primary_eer_column(frame: pd.DataFrame) -> str:
    """The cosine EER of the first trial list (the summary's headline accuracy)."""
    cols = [c for c in frame.columns if c.startswith("eer_cosine_") and not c.endswith(("_low", "_high"))]
    if not cols:
        raise UserError("summary has no eer_cosine_* column")
    return cols[0]


def pareto_front(cost: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both cost and error, by increasing cost."""
    cost, error = np.asarray(cost, dtype=float), np.asarray(error, dtype=float)
    ok = np.flatnonzero(np.isfinite(cost) & np.isfinite(error))
    order = ok[np.lexsort((error[ok], cost[ok]))]
    front, best = [], np.inf
    for i in order:
        if error[i] < best:
            front.append(i)
            best = error[i]
    return np.array(front, dtype=int)


# what every reader of summary.csv needs (the report, the figures, svbench predict): a table without them is
# another file, named as such
SUMMARY_COLUMNS = ("arch", "seed", "train_energy_kwh")


def read_summary(path: Path | str) -> pd.DataFrame:
    """``summary.csv`` for its readers: absent, empty, damaged, a column of :data:`SUMMARY_COLUMNS` missing, or a
    header without a row (a study with no job) is a UserError naming the file."""
    frame = read_table(path, "study summary", SUMMARY_COLUMNS)
    if not len(frame):
        raise UserError(f"{path}: the study summary has a header and no row: no job to report on")
    return frame

KNEE_POINTS = 3  # a knee needs a point between the two ends of the front


def _knee(cost: np.ndarray, error: np.ndarray) -> tuple[int | None, str | None]:
    """(index of the knee, None), or (None, which of the checks below failed, as the reason there is none)."""
    cost, error = np.asarray(cost, dtype=float), np.asarray(error, dtype=float)
    front = pareto_front(cost, error)
    if len(front) < KNEE_POINTS:
        n = len(front)
        return None, f"{n} Pareto-optimal architecture{'' if n == 1 else 's'}, {KNEE_POINTS} needed"
    if (cost[front] <= 0).any():
        return None, "a Pareto-optimal architecture has a training energy ≤ 0, which a log scale cannot place"
    x = np.log10(cost[front])
    y = error[front]
    xn = (x - x[0]) / (x[-1] - x[0])
    gain = (y[0] - y) / (y[0] - y[-1])  # accuracy bought, 0 at the cheapest, 1 at the most accurate
    diff = gain - xn
    k = int(np.argmax(diff))
    if diff[k] > 1e-12:
        return int(front[k]), None
    return None, (f"none of the {len(front)} Pareto-optimal architectures lies above the chord from the cheapest to "
                  "the most accurate (energy on a log scale): the front does not bend towards a knee")


def knee(cost: np.ndarray, error: np.ndarray) -> int | None:
    """Index of the knee of the Pareto front (see the module doc), or None with fewer than 3 Pareto
    points, a Pareto point at cost ≤ 0 (no log scale), or a front that does not bend towards a knee (no point
    lies above the chord); :func:`knee_reason` says which."""
    return _knee(cost, error)[0]


def knee_reason(cost: np.ndarray, error: np.ndarray) -> str | None:
    """Why :func:`knee` found no knee, from the check that failed (None when there is one)."""
    return _knee(cost, error)[1]


def by_arch(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds of every numeric column, one row per architecture (grid order).

    Columns ``<col>_mean`` and ``<col>_sd`` (sd empty with one seed), plus ``seeds`` and the first
    value of every text column (block, stages, bases of the energy figures).
    """
    rows = []
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and c not in ("seed",)]
    text = [c for c in frame.columns if c not in numeric and c not in ("arch", "seed")]
    for arch, g in frame.groupby("arch", sort=False):
        row: dict = {"arch": arch, "seeds": len(g)}
        row |= {c: g[c].iloc[0] for c in text}
        for c in numeric:
            values = g[c].astype(float)
            row[f"{c}_mean"] = values.mean() if values.notna().any() else math.nan
            row[f"{c}_sd"] = values.std(ddof=1) if values.notna().sum() > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def mean_sd_text(mean: float, sd: float, digits: int = 3) -> str:
    """``mean ± sd`` for a table cell (sd left out with one seed, a dash when nothing was measured)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if sd is None or (isinstance(sd, float) and math.isnan(sd)):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {sd:.2g}"


def training_work(frame: pd.DataFrame) -> np.ndarray:
    """MACs per sample × samples per epoch × epochs, for each row of a summary."""
    return (frame["macs_g"].astype(float) * 1e9 * frame["samples_per_epoch"].astype(float)
            * frame["epochs"].astype(float)).to_numpy()


FIT_ARCHS = 2  # two parameters
HELD_OUT_ARCHS = 3  # each architecture left out, the fit of the others needs FIT_ARCHS


@dataclass
class EnergyModel:
    """E_train (J) = j_per_mac · work + j_per_job, with its leave-one-architecture-out error."""

    j_per_mac: float
    j_per_job: float
    archs: int
    held_out: pd.DataFrame  # arch, work, measured_kwh, predicted_kwh, error (relative)
    basis: str
    fitted: tuple[str, ...] = ()  # the architectures of the fit
    given: int = 0  # the trained architectures of the summary, usable or not
    unusable: dict[str, str] = field(default_factory=dict)  # arch left out of the fit: why
    dropped: list[str] = field(default_factory=list)  # "arch seed N: why", rows left out of a fitted arch

    @property
    def held_out_reason(self) -> str | None:
        """Why the held-out error cannot be measured (None when it can): usable architectures against those given,
        and why the others were not usable."""
        if self.archs >= HELD_OUT_ARCHS:
            return None
        why = "".join(f"; {arch}: {reason}" for arch, reason in self.unusable.items())
        return f"{self.archs} of {max(self.given, self.archs)} architectures usable, {HELD_OUT_ARCHS} needed{why}"

    @property
    def mean_abs_error(self) -> float:
        """Mean |predicted − measured| / measured over held-out architectures (NaN when not testable)."""
        err = self.held_out["error"].abs() if len(self.held_out) else pd.Series(dtype=float)
        return float(err.mean()) if err.notna().any() else math.nan

    @property
    def max_abs_error(self) -> float:
        err = self.held_out["error"].abs() if len(self.held_out) else pd.Series(dtype=float)
        return float(err.max()) if err.notna().any() else math.nan

    def predict_j(self, work: float) -> float:
        return self.j_per_mac * work + self.j_per_job

    def to_dict(self) -> dict:
        return {"j_per_mac": self.j_per_mac, "j_per_job": self.j_per_job, "archs": self.archs,
                "mean_abs_error": self.mean_abs_error, "max_abs_error": self.max_abs_error, "basis": self.basis,
                "held_out_reason": self.held_out_reason, "unusable": self.unusable, "dropped": self.dropped,
                "model": "E_train[J] = j_per_mac * MACs/sample * samples/epoch * epochs + j_per_job "
                         "(non-negative least squares)"}


def _fit(work: np.ndarray, joules: np.ndarray) -> tuple[float, float]:
    scale = float(np.max(work)) or 1.0  # conditioning: work is ~1e12..1e20, the constant ~1
    a, b = nnls(np.column_stack([work / scale, np.ones_like(work)]), joules)[0]
    return float(a / scale), float(b)


def _unusable(kwh: float, work: float) -> tuple[str, str] | None:
    """Why a row cannot enter the fit, as (template, value), or None: a training energy of 0 (nothing measured)
    or below, or not finite, would pull the fit towards 0 kWh, or break it."""
    for name, value, unit in (("MACs × samples × epochs", work, ""), ("training energy", kwh, " kWh")):
        if math.isnan(value):
            return f"no {name}", ""
        if not math.isfinite(value) or value <= 0:
            return f"{name} {{}}{unit}, not {'finite' if not math.isfinite(value) else 'positive'}", f"{value:g}"
    return None


def _reason(found: list[tuple[str, str]]) -> str:
    """The reasons of an architecture's rows, one per kind, with each kind's values: ``training energy 0, -1 kWh,
    not positive``."""
    kinds: dict[str, list[str]] = {}
    for template, value in found:
        values = kinds.setdefault(template, [])
        if value not in values:
            values.append(value)
    return " and ".join(t.format(", ".join(v)) for t, v in kinds.items())


def fit_energy_model(frame: pd.DataFrame) -> EnergyModel:
    """Fit on every (arch, seed) row with a positive, finite training energy and work; held-out error needs ≥ 3
    such architectures. The others are left out and named with the reason (``unusable``, ``dropped``); fewer than
    2 usable architectures is a UserError saying so. The rows of fine-tuned models (``stage``) are left out: their
    training is two recipes, not one."""
    need = ["macs_g", "samples_per_epoch", "epochs", "train_energy_kwh"]
    missing = [c for c in need if c not in frame]
    if missing:
        raise UserError(f"summary: missing column(s) {missing} for the energy model")
    if "stage" in frame:
        frame = frame[frame["stage"].fillna("trained") == "trained"]
    frame = frame.assign(work=training_work(frame),
                         train_energy_kwh=pd.to_numeric(frame["train_energy_kwh"], errors="coerce"))
    why = [_unusable(float(kwh), float(work)) for kwh, work in zip(frame["train_energy_kwh"], frame["work"],
                                                                   strict=True)]
    bad = np.array([w is not None for w in why], dtype=bool)
    data = frame[~bad]
    archs = list(dict.fromkeys(frame["arch"]))
    usable = list(dict.fromkeys(data["arch"]))
    unusable = {a: _reason([w for w, arch in zip(why, frame["arch"], strict=True) if arch == a and w])
                for a in archs if a not in usable}
    dropped = [f"{arch} {'seed ' + str(seed) if seed is not None else 'row ' + str(i)}: {_reason([w])}"
               for i, (arch, seed, w) in enumerate(zip(frame["arch"], frame.get("seed", [None] * len(frame)), why,
                                                       strict=True)) if w and arch in usable]
    if len(usable) < FIT_ARCHS:
        reasons = "".join(f"; {a}: {r}" for a, r in unusable.items())
        raise UserError(f"the energy model needs a positive, finite training energy of at least {FIT_ARCHS} "
                        f"architectures: {len(usable)} of {len(archs)} usable{reasons}")
    a, b = _fit(data["work"].to_numpy(), data["train_energy_kwh"].to_numpy() * 3.6e6)
    rows = []
    for arch, g in data.groupby("arch", sort=False):
        rest = data[data["arch"] != arch]
        measured = float(g["train_energy_kwh"].mean())
        work = float(g["work"].mean())
        if rest["arch"].nunique() >= FIT_ARCHS:
            ra, rb = _fit(rest["work"].to_numpy(), rest["train_energy_kwh"].to_numpy() * 3.6e6)
            predicted = (ra * work + rb) / 3.6e6
        else:
            predicted = math.nan
        rows.append({"arch": arch, "work_mac_samples": work, "measured_kwh": measured, "predicted_kwh": predicted,
                     "error": (predicted - measured) / measured})
    bases = set(data.get("train_energy_basis", pd.Series(["measured"])).astype(str))
    return EnergyModel(a, b, len(usable), pd.DataFrame(rows), "/".join(sorted(bases)), fitted=tuple(usable),
                       given=len(archs), unusable=unusable, dropped=dropped)


def predict_training_energy(spec: object, summary: pd.DataFrame, epochs: int, samples: int) -> dict:
    """Predicted training energy of ``spec`` (an ``ArchSpec``) for ``epochs`` × ``samples`` per epoch,
    from the model fitted on ``summary``, with that model's held-out error."""
    from svbench.models import summarize  # torch: only when predicting

    if epochs <= 0 or samples <= 0:
        raise UserError("--epochs and --samples must be positive")
    frames = int(summary["macs_frames"].iloc[0]) if "macs_frames" in summary else MACS_FRAMES
    size = summarize(spec, frames=frames)
    model = fit_energy_model(summary)
    work = size["macs"] * samples * epochs
    joules = model.predict_j(work)
    return {"arch": size["name"], "params_m": size["params"] / 1e6, "macs_g": size["macs"] / 1e9,
            "macs_frames": frames, "epochs": epochs, "samples_per_epoch": samples, "predicted_kwh": joules / 3.6e6,
            "mean_abs_error": model.mean_abs_error, "max_abs_error": model.max_abs_error,
            "fitted_archs": model.archs, "in_fit": size["name"] in model.fitted, "basis": model.basis,
            "held_out_reason": model.held_out_reason, "unusable": model.unusable, "dropped": model.dropped}
