"""The findings the data can carry, from ``pareto.csv`` and ``differences.csv`` (:mod:`svbench.study.tradeoff`).

A difference is stated as one only where its interval supports it (the ΔEER interval excludes zero); the
others are listed with their numbers and labelled *not significant*, so that no reader takes a point estimate
for a finding. The same findings go to the study page (HTML) and to the report's opening page (reStructuredText,
Snakemake's workflow-level ``report:``).
"""

from __future__ import annotations

import html
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from svbench.errors import UserError
from svbench.fileio import read_table
from svbench.study.tradeoff import FINE_TUNING


def _num(v: float, digits: int = 2) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}g}"


def _signed(v: float) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:+.2g}".replace("-", "−")


def _bounds(low: float, high: float, text=_num) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f" [{text(low)}, {text(high)}]"


def _p(p: float, resamples: int) -> str:
    if not math.isfinite(p):
        return ""
    # a bootstrap p-value resolves 1/resamples: none of them on the other side is "below that", not zero
    return f" (p < {1 / resamples:.2g})" if p == 0 and resamples else f" (p = {_num(p)})"


def _significant(value: object) -> bool | None:
    """``significant`` as differences.csv holds it: True, False, or empty where no interval was made."""
    if value is True or value == "True":
        return True
    if value is False or value == "False":
        return False
    return None


def comparison_text(row: pd.Series | dict, resamples: int = 0) -> str:
    """``B vs A: ΔEER +0.05 pp [−0.02, 0.12], not significant, for 2.1× [1.9, 2.3] the training energy``;
    a p value resolves the row's own ``resamples`` (tables of earlier versions have none: ``resamples``)."""
    own = row.get("resamples")
    if isinstance(own, numbers.Real) and math.isfinite(own) and own > 0:
        resamples = int(own)
    delta = (f"ΔEER {_signed(row['delta_eer_pp'])} pp"
             f"{_bounds(row['delta_eer_pp_low'], row['delta_eer_pp_high'], _signed)}")
    significant = _significant(row.get("significant"))
    if significant is None:
        verdict = "no interval: a point estimate, not a finding"
    else:
        verdict = "significant" + _p(row.get("p", math.nan), resamples) if significant else "not significant"
    ratio = f"{_num(row['energy_ratio'])}×{_bounds(row['energy_ratio_low'], row['energy_ratio_high'])}"
    return f"{row['arch']} vs {row['against']}: {delta}, {verdict}, for {ratio} the training energy" + _gain_text(row)


def _gain_text(row: pd.Series | dict) -> str:
    """What extra training bought (a fine-tuned model against its backbone): ``; +0.8 kWh [0.7, 0.9], 0.2 EER
    points per extra kWh [0.05, 0.3]``; nothing for other comparisons."""
    extra = row.get("extra_train_kwh", math.nan)
    if extra is None or not math.isfinite(float(extra)):
        return ""
    gain = row.get("eer_pp_per_extra_kwh", math.nan)
    return (f"; +{_num(extra)} kWh{_bounds(row['extra_train_kwh_low'], row['extra_train_kwh_high'])} of "
            f"fine-tuning, {_signed(gain)} EER points per extra kWh"
            f"{_bounds(row['eer_pp_per_extra_kwh_low'], row['eer_pp_per_extra_kwh_high'], _signed)}")


PARETO_COLUMNS = ("arch", "p_pareto", "p_knee", "pareto_optimal", "knee")
DIFFERENCE_COLUMNS = ("arch", "against", "comparison", "delta_eer_pp", "delta_eer_pp_low", "delta_eer_pp_high",
                      "energy_ratio", "energy_ratio_low", "energy_ratio_high", "significant")


def _table(path: Path, what: str, columns: tuple[str, ...], numbers: tuple[str, ...]) -> pd.DataFrame:
    """One of the two tables; a file with no header (blank) is the empty table a study with nothing to compare
    writes (one architecture, or no energy)."""
    if Path(path).exists() and Path(path).stat().st_size < 4096 and not Path(path).read_bytes().strip():
        return pd.DataFrame()
    frame = read_table(path, what, columns)
    for column in numbers:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise UserError(f"{path}:{row + 2}: the {what}'s column {column!r} must be a number, got "
                            f"{frame[column].iloc[row]!r}")
        frame[column] = values
    return frame


@dataclass
class Findings:
    """What the resampled studies support: Pareto and knee frequencies, differences split by their intervals."""

    resamples: int
    pareto: list[dict] = field(default_factory=list)  # arch, p_pareto, p_knee, on the front of the means
    supported: list[str] = field(default_factory=list)  # differences whose interval excludes zero
    unsupported: list[str] = field(default_factory=list)  # the rest, labelled
    with_interval: int = 0  # compared differences that have an interval (whether or not it excludes zero)
    seeds_drawn: bool = False  # some architecture has several seeds: the seeds are drawn with the speakers

    @classmethod
    def of(cls, pareto: pd.DataFrame, differences: pd.DataFrame) -> Findings:
        resamples = int(pareto["resamples"].max()) if len(pareto) and "resamples" in pareto else 0
        reasons = pareto["not_ranked"] if "not_ranked" in pareto else pd.Series([None] * len(pareto))
        rows = [{"arch": r.arch, "p_pareto": float(r.p_pareto), "p_knee": float(r.p_knee),
                 "pareto_optimal": bool(r.pareto_optimal), "knee": bool(r.knee),
                 "not_ranked": reason if isinstance(reason, str) and reason else None}
                for r, reason in zip(pareto.itertuples(), reasons, strict=True)]
        rows.sort(key=lambda r: -r["p_pareto"] if math.isfinite(r["p_pareto"]) else 1.0)
        seeds = pd.to_numeric(pareto["seeds"], errors="coerce") if "seeds" in pareto else pd.Series(dtype=float)
        found = cls(resamples, rows, seeds_drawn=bool((seeds > 1).any()))
        pairs = set()
        # a fine-tuned model against its backbone first: that pair is stated as what the fine-tuning buys
        ordered = sorted(differences.to_dict("records") if len(differences) else [],
                         key=lambda r: r["comparison"] != FINE_TUNING)
        for row in ordered:
            pair = frozenset((row["arch"], row["against"]))
            if pair in pairs:  # a step along the front that is also a comparison with the reference
                continue
            pairs.add(pair)
            significant = _significant(row["significant"])
            found.with_interval += significant is not None
            (found.supported if significant else found.unsupported).append(
                f"{row['comparison']}: {comparison_text(row, resamples)}")
        return found

    def none_supported(self) -> str:
        """Why no difference is stated as a finding: from what was compared, not assumed."""
        if not self.unsupported:
            return "None: no two architectures were compared (the study has fewer than two with accuracy and energy)."
        if not self.with_interval:
            return ("None: no compared difference has an interval (no speaker-bootstrap replicates): each is a point "
                    "estimate, listed below.")
        return NONE_SUPPORTED

    @classmethod
    def read(cls, pareto_csv: Path, differences_csv: Path) -> Findings:
        """The findings of the two tables; a table that is there but damaged (not CSV, a column missing, a number
        that is not one) is a UserError naming the file and the column."""
        return cls.of(_table(pareto_csv, "Pareto table", PARETO_COLUMNS, ("p_pareto", "p_knee")),
                      _table(differences_csv, "differences table", DIFFERENCE_COLUMNS,
                             ("delta_eer_pp", "delta_eer_pp_low", "delta_eer_pp_high", "energy_ratio")))

    def frequencies(self) -> list[str]:
        """One line per architecture: how often it is Pareto-optimal and the knee over the resampled studies, or
        why it is not ranked there (a labelled gap)."""
        out = []
        for r in self.pareto:
            if not math.isfinite(r["p_pareto"]):
                if r["not_ranked"]:
                    out.append(f"{r['arch']}: not ranked over the resampled studies ({r['not_ranked']})")
                continue
            means = " (on the front of the means" + (", its knee)" if r["knee"] else ")") if r["pareto_optimal"] else ""
            out.append(f"{r['arch']}: Pareto-optimal in {r['p_pareto']:.0%} of the resampled studies, the knee in "
                       f"{r['p_knee']:.0%}{means}")
        return out

    def resampled_studies(self) -> str:
        """What a resampled study draws again, as the tables record it: the front is EER against training kWh, so
        the speakers and the training energy's sensor errors always, the seeds where an architecture has several
        (no carbon factor moves it)."""
        drawn = ("each architecture's seeds, " if self.seeds_drawn else "") + (
            "the evaluation speakers and the sensor errors of each training energy")
        return f"Over {self.resamples} resampled studies ({drawn} drawn again):"

    def html(self) -> str:
        """The findings as an HTML section of the study page."""
        parts = ["<h3>What the data can carry</h3>"]
        if not self.resamples:
            parts.append(f"<p>{NO_INTERVALS}</p>")
        else:
            parts.append(f"<p>{html.escape(self.resampled_studies())}</p>")
            parts.append(_html_list(self.frequencies()))
        parts.append("<h4>Differences their intervals support</h4>")
        parts.append(_html_list(self.supported) if self.supported else f"<p>{html.escape(self.none_supported())}</p>")
        if self.unsupported:
            parts.append("<h4>Differences the data cannot tell apart</h4>" + _html_list(self.unsupported))
        return "".join(parts)

    def rst(self, title: str, context: str) -> str:
        """The findings as the report's opening page (reStructuredText for Snakemake's ``report:``)."""
        lines = [title, "=" * len(title), "", _rst(context), ""]
        if not self.resamples:
            lines += [NO_INTERVALS, ""]
        else:
            lines += [_rst(self.resampled_studies()), ""] + [f"- {_rst(t)}" for t in self.frequencies()] + [""]
        lines += ["Differences their intervals support", "-" * 35, ""]
        lines += [f"- {_rst(t)}" for t in self.supported] or [_rst(self.none_supported())]
        if self.unsupported:
            lines += ["", "Differences the data cannot tell apart", "-" * 38, ""]
            lines += [f"- {_rst(t)}" for t in self.unsupported]
        lines += ["", "The tables and figures behind these lines are in the *Study* category: "
                  "``pareto.html``, ``differences.html``, ``summary_by_arch.html``.", ""]
        # Snakemake renders this page with Jinja first: nothing in it is a template
        return "{% raw %}\n" + "\n".join(lines) + "\n{% endraw %}\n"


NO_INTERVALS = ("No Pareto or knee frequencies were made (no architecture had both the replicates of its accuracy and "
                "the draws of its energy over resampled studies): the Pareto front and the knee are point estimates.")
NONE_SUPPORTED = "None: of the differences compared with an interval, none has an interval that excludes zero."


def _html_list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in items) + "</ul>"


def _rst(text: str) -> str:
    """Plain text safe in reStructuredText: its inline markup characters escaped."""
    return re.sub(r"([\\*_`|])", r"\\\1", text)
