"""The study in a few lines for the report: Pareto-optimal architectures, the knee, the energy model."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.models.spec import MACS_FRAMES
from svbench.study.analysis import by_arch, fit_energy_model, knee, knee_reason, pareto_front, read_summary
from svbench.study.figures import energy_unit, primary_eer_column
from svbench.study.findings import Findings
from svbench.study.tables import STYLE, html_table


def _num(v: float, digits: int = 3) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}g}"


def study_findings(frame: pd.DataFrame) -> dict:
    """Pareto front and knee of EER against training energy (per-architecture means), and the energy model."""
    eer_col = primary_eer_column(frame)
    m = by_arch(frame)
    kwh, eer = m["train_energy_kwh_mean"].to_numpy(float), m[f"{eer_col}_mean"].to_numpy(float)
    front = pareto_front(kwh, eer)
    k = knee(kwh, eer)
    out: dict = {"eer_column": eer_col, "archs": len(m), "seeds": int(m["seeds"].max()) if len(m) else 0,
                 "pareto": [{"arch": m["arch"].iloc[i], "train_energy_kwh": kwh[i], "eer": eer[i]} for i in front],
                 "knee": None if k is None else {"arch": m["arch"].iloc[k], "train_energy_kwh": kwh[k],
                                                  "eer": eer[k]},
                 "no_knee": knee_reason(kwh, eer),
                 "unmeasured": [a for a, e in zip(m["arch"], kwh, strict=True) if not np.isfinite(e)],
                 "kwh": kwh, "eer": eer,
                 "basis": sorted(set(frame["train_energy_basis"].astype(str)))}
    try:
        out["energy_model"] = fit_energy_model(frame)
    except ValueError as exc:
        out["energy_model"] = str(exc)
    return out


def write_study_report(summary: Path, out_html: Path, model_json: Path | None = None,
                       model_table: Path | None = None, pareto: Path | None = None, differences: Path | None = None,
                       findings_rst: Path | None = None, footprint: Path | None = None) -> dict:
    """``study.html`` (the findings, for the report); the energy model as JSON and as a held-out table; with
    ``pareto``/``differences`` (``pareto.csv``, ``differences.csv``) what their intervals support, on the page
    and as ``findings_rst``, the report's opening page; with ``footprint`` (``footprint.txt`` of
    :func:`svbench.study.footprint.write_footprint`) both open on the whole study's footprint."""
    frame = read_summary(summary)
    f = study_findings(frame)
    scale, unit = energy_unit(frame["train_energy_kwh"].to_numpy(float))
    estimated = any("estimated" in b for b in f["basis"])
    est = " (estimated)" if estimated else ""
    trials = f["eer_column"].removeprefix("eer_cosine_")
    tuned = "stage" in frame and bool(frame["stage"].ne("trained").any())
    trained = frame.loc[frame["stage"].eq("trained"), "arch"].nunique() if tuned else f["archs"]
    models = (f"{trained} architectures, each also after large-margin fine-tuning (+lm)" if tuned
              else f"{trained} architectures")
    whole = " (for a fine-tuned model its training and its fine-tuning)" if tuned else ""
    context = (f"{models}, {f['seeds']} seed(s) each; accuracy is the cosine EER on {trials}; "
               f"training energy is the whole training job{whole}{est}.")
    if footprint is not None:
        context = f"{Path(footprint).read_text().strip()} {context}"
    parts = [f"<h2>What the study shows</h2><p>{html.escape(context)}</p>"]
    if f["pareto"]:
        items = "".join(f"<li><b>{html.escape(p['arch'])}</b>: EER {_num(p['eer'])} %, training "
                        f"{_num(p['train_energy_kwh'] * scale)} {unit}</li>" for p in f["pareto"])
        parts.append(f"<h3>Pareto-optimal architectures</h3><p>No other architecture is both cheaper to train and "
                     f"more accurate (by increasing energy, means over seeds):</p><ul>{items}</ul>")
    else:  # say which is missing: the energy, the accuracy, or both
        has_energy, has_eer = bool(np.isfinite(f["kwh"]).any()), bool(np.isfinite(f["eer"]).any())
        lacking = " and ".join(w for w, has in (("training energy", has_energy), ("accuracy (EER)", has_eer))
                               if not has) or "an architecture with both training energy and accuracy"
        parts.append(f"<p>No {html.escape(lacking)} was measured: no Pareto front.</p>")
    if f["knee"]:
        k = f["knee"]
        parts.append(f"<h3>The knee</h3><p><b>{html.escape(k['arch'])}</b> (EER {_num(k['eer'])} %, "
                     f"{_num(k['train_energy_kwh'] * scale)} {unit}): the Pareto point farthest above the chord from "
                     "the cheapest to the most accurate Pareto architecture, energy on a log scale and both axes "
                     "scaled to [0, 1] (Kneedle's difference curve). Past it, each extra decade of energy buys less "
                     "accuracy than on average along the front.</p>")
    else:
        parts.append(f"<h3>The knee</h3><p>Not defined here: {html.escape(f['no_knee'] or 'no Pareto front')}.</p>")
    if pareto is not None and differences is not None:
        carried = Findings.read(pareto, differences)
        parts.append(carried.html())
        if findings_rst is not None:
            Path(findings_rst).write_text(carried.rst("What the study shows", context))
    parts += _energy_model_parts(frame, f["energy_model"], scale, unit, model_json, model_table)
    if f["unmeasured"]:
        parts.append("<p>No training energy for: " + html.escape(", ".join(f["unmeasured"])) + ".</p>")
    if estimated:
        parts.append("<p><b>Caveat:</b> energy here is <i>estimated</i> from CPU time × watts per core and resident "
                     "memory × watts per GiB (no RAPL/NVML/IPMI sensor was readable); it ranks architectures but "
                     "is not a measurement.</p>")
    Path(out_html).write_text(f"<!doctype html><meta charset='utf-8'>{STYLE}\n<div style='font: 14px/1.5 "
                              f"system-ui, sans-serif; max-width: 60em'>{''.join(parts)}</div>\n")
    return f


def _energy_model_parts(frame: pd.DataFrame, model, scale: float, unit: str, model_json: Path | None,
                        model_table: Path | None) -> list[str]:
    """The energy model's section of the page; its JSON (or why there is none) and its held-out table."""
    parts = []
    table = pd.DataFrame()
    if isinstance(model, str):
        parts.append(f"<h3>Energy model</h3><p>Not fitted: {html.escape(model)}.</p>")
        if model_json:  # the workflow expects the file: say why there is no model rather than omit it
            Path(model_json).write_text(json.dumps({"fitted": False, "reason": model}, indent=2))
    else:
        held = model.held_out
        table = held.assign(measured=held["measured_kwh"] * scale, predicted=held["predicted_kwh"] * scale,
                            error_pct=100 * held["error"])[["arch", "work_mac_samples", "measured", "predicted",
                                                            "error_pct"]]
        table.columns = ["arch", "MACs × samples", f"measured ({unit})", f"predicted, held out ({unit})",
                         "error (%)"]
        err = ("mean |error| " + _num(100 * model.mean_abs_error, 2) + " %, max " + _num(100 * model.max_abs_error, 2)
               + " %" if math.isfinite(model.mean_abs_error) else f"not testable ({model.held_out_reason})")
        parts.append(f"<h3>Energy model</h3><p>E<sub>train</sub> = {model.j_per_mac:.3g} J per MAC·sample × "
                     f"MACs per sample × samples per epoch × epochs + {model.j_per_job:.3g} J per job "
                     f"(non-negative least squares over {model.archs} architectures). Held-out error, each "
                     f"architecture predicted by a fit without it: {err}. "
                     "<code>svbench predict</code> uses it for architectures not trained yet.</p>")
        parts.append(html_table(table, "Leave-one-architecture-out predictions of training energy"))
        if model_json:
            Path(model_json).write_text(json.dumps(model.to_dict() | {"macs_frames": int(frame["macs_frames"].iloc[0])
                                                                      if "macs_frames" in frame else MACS_FRAMES},
                                                        indent=2))
    if model_table is not None:
        table.to_csv(model_table, index=False)
    return parts
