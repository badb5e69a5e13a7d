"""Figures of the study, drawn from ``summary.csv`` (matplotlib, PNG for the report)."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

log = logging.getLogger("svbench.figures")


def pareto_front(cost: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both cost and error, by increasing cost."""
    order = np.lexsort((error, cost))
    front, best = [], np.inf
    for i in order:
        if error[i] < best:
            front.append(i)
            best = error[i]
    return np.array(front, dtype=int)


def primary_eer_column(frame: pd.DataFrame) -> str:
    """The cosine EER of the first trial list (the summary's headline accuracy)."""
    cols = [c for c in frame.columns if c.startswith("eer_cosine_")]
    if not cols:
        raise ValueError("summary has no eer_cosine_* column")
    return cols[0]


def eer_vs_training_energy(frame: pd.DataFrame, out: Path) -> Path:
    """EER against training energy (log axis), mean ± sd over seeds, Pareto front drawn."""
    eer_col = primary_eer_column(frame)
    g = frame.groupby("arch", sort=False).agg(kwh=("train_energy_kwh", "mean"), eer=(eer_col, "mean"),
                                              eer_sd=(eer_col, "std"), basis=("train_energy_basis", "first"))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=150)
    measured = g.dropna(subset=["kwh"])
    ax.errorbar(measured["kwh"] * 1e3, measured["eer"], yerr=measured["eer_sd"].fillna(0), fmt="o", capsize=3,
                color="tab:blue", label="architecture (mean ± sd over seeds)")
    for name, r in measured.iterrows():
        ax.annotate(name, (r["kwh"] * 1e3, r["eer"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if len(measured) >= 2:
        front = pareto_front(measured["kwh"].to_numpy(), measured["eer"].to_numpy())
        ax.plot(measured["kwh"].to_numpy()[front] * 1e3, measured["eer"].to_numpy()[front], "--", color="tab:red",
                label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("training energy (Wh" + (", estimated)" if (measured["basis"] == "estimated").any() else ")"))
    ax.set_ylabel(f"EER (%) — {eer_col.removeprefix('eer_cosine_')}, cosine")
    ax.set_title("Accuracy bought by training energy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def make_figures(summary: Path, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(summary)
    return [eer_vs_training_energy(frame, out_dir / "eer_vs_training_energy.png")]
