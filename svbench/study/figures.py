"""Figures of the study (matplotlib, PNG), drawn from the summary tables and the jobs' traces.

Every figure survives one architecture, one seed and missing energy: what cannot be drawn is said
on the figure. Energy from the CPU-time model is labelled *estimated* in axis labels and legends.
Log axes carry plain numbers (0.2, 0.5, 1, 2), never 2×10⁻¹.
"""

from __future__ import annotations

import logging
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from svbench.energy import REST_OF_JOB, job_nodes, read_energy  # noqa: E402
from svbench.instrument.markers import BASELINE, read_markers  # noqa: E402
from svbench.instrument.markers import phases as pair_phases  # noqa: E402
from svbench.instrument.nodes import MARKERS, node_name, trace_path  # noqa: E402
from svbench.layout import FINETUNE, STEPS, Layout, Model
from svbench.models.spec import MACS_FRAMES
from svbench.study import catalog  # noqa: E402
from svbench.study.analysis import (  # noqa: E402,F401  (re-exported)
    by_arch,
    knee,
    knee_reason,
    pareto_front,
    primary_eer_column,
    read_summary,
)
from svbench.uncertainty.study_draws import is_bound  # noqa: E402

log = logging.getLogger("svbench.figures")

DPI = 150
COMPONENT_COLOURS = {"gpu": "#4c72b0", "cpu": "#dd8452", "dram": "#55a868", "rest of node": "#8c8c8c",
                     "node": "#222222"}
COMPONENT_LABELS = {"gpu": "GPU", "cpu": "CPU package", "dram": "DRAM", "rest of node": "rest of node"}
STEP_TITLES = {"train": "training", FINETUNE: "large-margin fine-tuning", "embed": "embedding (inference)",
               "score": "scoring (inference)"}
FIGURES = [f"{name}.png" for name in catalog.FIGURES]

plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
                     "axes.spines.top": False, "axes.spines.right": False})


def _plain(value: float, _pos: object = None) -> str:
    """0.0002, 0.5, 3, 1500 — plain decimal, at most 3 significant digits."""
    if value <= 0 or not math.isfinite(value):
        return ""
    text = f"{value:.3g}"
    if "e" in text:  # below 1e-4 or above 1e6: write it out
        text = f"{value:.{max(0, -math.floor(math.log10(value)) + 2)}f}".rstrip("0").rstrip(".") \
            if value < 1 else f"{value:,.0f}"
    return text


def plain_log_axis(axis: matplotlib.axis.Axis, lo: float, hi: float) -> None:
    """Log scale with plain tick labels; label 1-2-5 minor ticks when the data span less than a decade."""
    axis.set_major_formatter(FuncFormatter(_plain))
    if hi > 0 and lo > 0 and hi / lo < 10:
        subs = (1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0) if hi / lo < 2.5 else \
            (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
        axis.set_minor_locator(LogLocator(base=10, subs=subs))
        axis.set_minor_formatter(FuncFormatter(_plain))
    else:
        axis.set_minor_formatter(NullFormatter())


def energy_unit(kwh: np.ndarray) -> tuple[float, str]:
    """A unit (factor from kWh, name) that keeps the numbers readable: Wh, kWh or MWh."""
    finite = np.asarray(kwh, dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    typical = float(np.median(finite)) if len(finite) else 1.0
    if typical < 1:
        return 1e3, "Wh"
    if typical < 1e3:
        return 1.0, "kWh"
    return 1e-3, "MWh"


def _estimated(values: pd.Series) -> bool:
    return values.astype(str).str.contains("estimated").any()


def _note(ax: plt.Axes, text: str, where: str = "center") -> None:
    if where == "center":
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="#555",
                wrap=True)
    else:
        ax.text(0.01, 0.01, text, transform=ax.transAxes, ha="left", va="bottom", fontsize=7, color="#555")


def _save(fig: plt.Figure, out: Path) -> Path:
    fig.savefig(out, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return out


def _means(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-architecture means and sds (``by_arch``) indexed by arch, in grid order, with the intervals
    (``<column>_low/_high``) of ``summary_by_arch.csv`` where ``frame.attrs["by_arch"]`` holds it."""
    m = by_arch(frame[[c for c in frame.columns if not is_bound(c)]]).set_index("arch")
    intervals = frame.attrs.get("by_arch")
    if intervals is not None:
        bounds = intervals.set_index("arch")[[c for c in intervals.columns if is_bound(c)]]
        m = m.join(bounds, how="left")
    return m


def error_bars(m: pd.DataFrame, col: str, scale: float = 1.0) -> tuple[np.ndarray, str]:
    """The 2×N (below, above) error bars of ``<col>`` in a ``_means`` table and what they are: its interval
    where one was made (over seeds and speakers or draws), else ± sd over seeds; no bar where neither is."""
    mean = m[f"{col}_mean"].to_numpy(float)
    if f"{col}_low" in m and np.isfinite(m[f"{col}_low"].to_numpy(float)).any():
        below = mean - m[f"{col}_low"].to_numpy(float)
        above = m[f"{col}_high"].to_numpy(float) - mean
        what = "bars: interval over seeds and resamples"
    else:
        below = above = m[f"{col}_sd"].to_numpy(float)
        what = "bars: ± sd over seeds"
    # a resampled interval need not hold the mean of the seeds; a bar never points the wrong way
    bars = np.clip(np.nan_to_num(np.vstack([below, above])), 0, None) * scale
    return bars, what


def _label_points(ax: plt.Axes, xs: np.ndarray, ys: np.ndarray, names: list[str]) -> None:
    for x, y, name in zip(xs, ys, names, strict=True):
        if np.isfinite(x) and np.isfinite(y):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)


def _fine_tuning_arrows(ax: plt.Axes, x: np.ndarray, y: np.ndarray, names: list[str], ok: np.ndarray) -> None:
    """An arrow from each trained model to its large-margin fine-tuned one: what the fine-tuning moved."""
    at = {n: i for i, n in enumerate(names) if ok[i]}
    tuned = [(Model.named(n).backbone, i) for n, i in at.items() if Model.named(n).fine_tuned]
    pairs = [(at[backbone], i) for backbone, i in tuned if backbone in at]
    for a, b in pairs:
        ax.annotate("", xy=(x[b], y[b]), xytext=(x[a], y[a]), zorder=2.5,
                    arrowprops={"arrowstyle": "->", "color": "#55a868", "lw": 1.2, "shrinkA": 4, "shrinkB": 4})
    if pairs:
        ax.plot([], [], color="#55a868", lw=1.2, label="large-margin fine-tuning (→ +lm)")


def _nothing_placed(has_x: np.ndarray, positive_x: np.ndarray, has_y: np.ndarray) -> str:
    """Why no architecture is on a trade-off panel: the first of its checks that no architecture passed."""
    if not has_x.any():
        return "no energy for any architecture:\nnothing to place on this axis"
    if not positive_x.any():
        return "no energy > 0 for any architecture (a log axis cannot place 0)"
    if not has_y.any():
        return "no accuracy for any architecture"
    return "no architecture has both an energy > 0 and an accuracy"


def _not_placed(names: list[str], has_x: np.ndarray, positive_x: np.ndarray, has_y: np.ndarray) -> list[str]:
    """The architectures left off a panel, grouped by the check each failed (one may fail two)."""
    groups = (("no energy", ~has_x), ("energy ≤ 0", has_x & ~positive_x), ("no accuracy", ~has_y))
    return [f"{what}: " + ", ".join(n for n, k in zip(names, failed, strict=True) if k)
            for what, failed in groups if failed.any()]


def _trade_off_panel(ax: plt.Axes, x: np.ndarray, xerr: np.ndarray, y: np.ndarray, yerr: np.ndarray,
                     names: list[str], xlabel: str, ylabel: str, with_knee: bool = True, bars: str = "± sd") -> dict:
    """Points (means, 2×N error bars of what ``bars`` says), the Pareto front as a step line, the knee ringed.
    Returns what was found."""
    has_x, has_y = np.isfinite(x), np.isfinite(y)
    positive_x = has_x & (x > 0)  # a log axis
    ok = positive_x & has_y
    found: dict = {"front": [], "knee": None}
    if not ok.any():
        _note(ax, _nothing_placed(has_x, positive_x, has_y))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        return found
    ax.errorbar(x[ok], y[ok], xerr=xerr[:, ok], yerr=yerr[:, ok], fmt="o", ms=5, capsize=2, color="#4c72b0",
                ecolor="#9db4d6", label=f"architecture: mean over seeds; {bars}", zorder=3)
    _label_points(ax, x[ok], y[ok], [n for n, k in zip(names, ok, strict=True) if k])
    _fine_tuning_arrows(ax, x, y, names, ok)
    idx = np.flatnonzero(ok)
    front = idx[pareto_front(x[ok], y[ok])]
    found["front"] = [names[i] for i in front]
    if len(front) >= 2:
        fx, fy = x[front], y[front]
        # the best error reachable with at most that much energy: a staircase
        ax.step(np.append(fx, fx[-1] * 1.15), np.append(fy, fy[-1]), where="post", color="#c44e52", lw=1.3,
                label="Pareto front", zorder=3.5)  # over the error bars it would hide behind
    ax.scatter(x[front], y[front], s=60, facecolors="none", edgecolors="#c44e52", zorder=4)
    corner = []  # one note: two texts in the corner would print over each other
    if with_knee:
        k = knee(x[ok], y[ok])
        if k is not None:
            ki = idx[k]
            found["knee"] = names[ki]
            ax.scatter([x[ki]], [y[ki]], s=260, marker="*", color="#e3a21a", edgecolors="k", lw=0.6, zorder=5,
                       label=f"knee: {names[ki]}")
        else:
            # the check that failed, not a guess: too few on the front, or a front that does not bend
            corner.append(textwrap.fill(f"knee: none, {knee_reason(x[ok], y[ok])}", 90))
    corner += _not_placed(names, has_x, positive_x, has_y)
    if corner:
        _note(ax, "\n".join(corner), where="corner")
    ax.set_xscale("log")
    # the axis holds the error bars too (their low ends stay positive on a log axis)
    lows = x[ok] - xerr[0, ok]
    lo = float(np.nanmin(np.where(lows > 0, lows, x[ok])))
    hi = float(np.nanmax(x[ok] + xerr[1, ok]))
    plain_log_axis(ax.xaxis, lo, hi)
    ax.set_xlim(lo / 1.15, hi * 1.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.25)
    ax.margins(y=0.12)
    # below the axes: inside, it would cover the error bars of some architecture
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, frameon=False)
    return found


def _bars_text(x: str, y: str) -> str:
    return x if x == y else f"energy {x}, accuracy {y.removeprefix('bars: ')}"


def eer_vs_training_energy(frame: pd.DataFrame, out: Path) -> Path:
    """EER and minDCF(0.01) against training energy (log axis): Pareto front, knee."""
    eer_col = primary_eer_column(frame)
    dcf_col = eer_col.replace("eer_", "min_dcf_0.01_", 1)
    m = _means(frame)
    scale, unit = energy_unit(m["train_energy_kwh_mean"])
    x = m["train_energy_kwh_mean"].to_numpy(float) * scale
    xerr, xwhat = error_bars(m, "train_energy_kwh", scale)
    est = ", estimated" if _estimated(frame["train_energy_basis"]) else ""
    trials = eer_col.removeprefix("eer_cosine_")
    panels = [(eer_col, f"EER (%), {trials}, cosine"), (dcf_col, f"minDCF (p=0.01), {trials}, cosine")]
    panels = [p for p in panels if f"{p[0]}_mean" in m]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8), squeeze=False)
    for ax, (col, label) in zip(axes[0], panels, strict=True):
        yerr, ywhat = error_bars(m, col)
        _trade_off_panel(ax, x, xerr, m[f"{col}_mean"].to_numpy(float), yerr, list(m.index),
                         f"training energy ({unit}{est}), log scale", label, bars=_bars_text(xwhat, ywhat))
    fig.suptitle("Accuracy bought by training energy", fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def _stacked_bars(ax: plt.Axes, table: pd.DataFrame, colours: dict, unit: str, estimated: bool, title: str,
                  hatch: str = "") -> None:
    """One bar per row of ``table`` (index: arch), one segment per column."""
    values = table.to_numpy(float)
    if table.empty or not np.isfinite(values).any() or np.nansum(values) <= 0:
        _note(ax, "no energy measured" if table.empty or not np.isfinite(values).any() else "no energy > 0 to show")
        ax.set_title(title)
        ax.set_xticks([])
        return
    bottom = np.zeros(len(table))
    xs = np.arange(len(table))
    for col in table.columns:
        values = np.nan_to_num(table[col].to_numpy(float))
        if not values.any():
            continue
        ax.bar(xs, values, bottom=bottom, width=0.65, color=colours.get(col), label=COMPONENT_LABELS.get(col, col),
               hatch=hatch, edgecolor="white", lw=0.5)
        bottom += values
    ax.set_xticks(xs, table.index, rotation=30, ha="right")
    ax.set_ylabel(f"energy ({unit}{', estimated' if estimated else ''})")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.25)


def _phase_jobs(phases: pd.DataFrame, step: str) -> pd.DataFrame:
    return phases[phases["step"] == step] if len(phases) else phases


def energy_by_component(phases: pd.DataFrame, out: Path) -> Path:
    """Energy of each step by component (GPU, CPU, DRAM, rest of node), one stacked bar per architecture."""
    steps = [s for s in STEP_TITLES if len(phases) and (phases["step"] == s).any()] or ["train"]
    fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 3.8), squeeze=False)
    for ax, step in zip(axes[0], steps, strict=True):
        job = _phase_jobs(phases, step)
        job = job[job["phase"] == "job"] if len(job) else job
        if not len(job):
            _stacked_bars(ax, pd.DataFrame(), COMPONENT_COLOURS, "J", False, STEP_TITLES[step])
            continue
        cols = {"gpu": "gpu_j", "cpu": "cpu_j", "dram": "dram_j", "rest of node": "rest_of_node_j"}
        table = job.groupby("arch", sort=False)[list(cols.values())].mean()
        table.columns = list(cols)
        table, unit = _in_readable_unit(table)
        _stacked_bars(ax, table, COMPONENT_COLOURS, unit, _estimated(job["basis"]), STEP_TITLES[step],
                      hatch="//" if _estimated(job["basis"]) else "")
    fig.suptitle("Energy by component" + (" (hatched: estimated)" if _estimated(phases.get("basis", pd.Series(
        dtype=str))) else ""), fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def idle_vs_dynamic(phases: pd.DataFrame, out: Path) -> Path:
    """Energy of each job split into idle (the idle baseline's power × the job's seconds) and dynamic
    (the rest): what the node would have drawn anyway against what the workload added."""
    steps = [s for s in STEP_TITLES if len(phases) and (phases["step"] == s).any()] or ["train"]
    fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 3.8), squeeze=False)
    colours = {"idle": "#bbbbbb", "dynamic": "#d95f02"}
    for ax, step in zip(axes[0], steps, strict=True):
        job = _phase_jobs(phases, step)
        job = job[job["phase"] == "job"] if len(job) else job
        if not len(job) or job["energy_j"].isna().all():
            _stacked_bars(ax, pd.DataFrame(), colours, "J", False, STEP_TITLES[step])  # says: no energy measured
            continue
        if "idle_j" not in job or job["idle_j"].isna().all():  # energy, but no idle baseline to split it by
            ax.set_title(STEP_TITLES[step])
            ax.set_xticks([])
            _note(ax, "no idle baseline measured (energy.baseline_s)")
            continue
        table = job.groupby("arch", sort=False)[["idle_j", "dynamic_j"]].mean()
        table.columns = ["idle", "dynamic"]
        table, unit = _in_readable_unit(table)
        _stacked_bars(ax, table, colours, unit, _estimated(job["basis"]), STEP_TITLES[step],
                      hatch="//" if _estimated(job["basis"]) else "")
    fig.suptitle("Idle and dynamic energy of each job (mean over seeds)", fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def _in_readable_unit(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """A table of joules in the unit its totals read best in (J for tiny jobs such as the demo's scoring)."""
    total_kwh = table.sum(axis=1).to_numpy() / 3.6e6
    scale, unit = energy_unit(total_kwh)
    if unit == "Wh" and np.nanmax(total_kwh) * 1e3 < 0.05:
        return table, "J"
    return table / 3.6e6 * scale, unit


def energy_by_phase(phases: pd.DataFrame, out: Path) -> Path:
    """Energy of each step by phase (epochs, embedding, scoring, rest of job), one bar per architecture."""
    steps = [s for s in STEP_TITLES if len(phases) and (phases["step"] == s).any()] or ["train"]
    fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 3.8), squeeze=False)
    palette = plt.get_cmap("tab10")
    for ax, step in zip(axes[0], steps, strict=True):
        rows = _phase_jobs(phases, step)
        rows = rows[~rows["phase"].isin(("job", BASELINE))] if len(rows) else rows  # the baseline is not the job's
        if not len(rows):
            _stacked_bars(ax, pd.DataFrame(), {}, "J", False, STEP_TITLES[step])
            continue
        table = rows.pivot_table(index="arch", columns="phase", values="energy_j", aggfunc="mean", sort=False)
        table = table.reindex(index=list(dict.fromkeys(rows["arch"])))
        order = [p for p in dict.fromkeys(rows["phase"]) if p != REST_OF_JOB] + [REST_OF_JOB]
        table = table[[p for p in order if p in table.columns]]
        colours = {p: palette(i) for i, p in enumerate(table.columns)} | {REST_OF_JOB: "#bbbbbb"}
        table, unit = _in_readable_unit(table)
        _stacked_bars(ax, table, colours, unit, _estimated(rows["basis"]), STEP_TITLES[step])
    fig.suptitle("Energy by phase (all spans and attempts summed; mean over seeds)", fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def _loglog_fit(ax: plt.Axes, x: np.ndarray, y: np.ndarray, xname: str) -> None:
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    n = int(ok.sum())
    if n < 2:
        _note(ax, f"fit: {n} architecture{'' if n == 1 else 's'} with {xname} and energy > 0, 2 needed",
              where="corner")
        return
    if np.ptp(np.log10(x[ok])) == 0:
        _note(ax, f"fit: the {n} architectures with energy all have the same {xname}", where="corner")
        return
    slope, intercept = np.polyfit(np.log10(x[ok]), np.log10(y[ok]), 1)
    xs = np.geomspace(x[ok].min(), x[ok].max(), 50)
    ax.plot(xs, 10 ** (intercept + slope * np.log10(xs)), "--", color="#c44e52",
            label=f"least-squares fit in log-log: energy ∝ {xname}^{slope:.2f}")
    ax.legend(loc="upper left")


def energy_vs_size(frame: pd.DataFrame, out: Path) -> Path:
    """Training energy against params and against MACs (log-log), each with a fitted power law."""
    m = _means(frame)
    scale, unit = energy_unit(m["train_energy_kwh_mean"])
    y = m["train_energy_kwh_mean"].to_numpy(float) * scale
    est = ", estimated" if _estimated(frame["train_energy_basis"]) else ""
    frames = int(frame["macs_frames"].iloc[0]) if "macs_frames" in frame else MACS_FRAMES
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9))
    for ax, col, xname, xlabel in ((axes[0], "params_m", "params", "parameters (millions), log scale"),
                                   (axes[1], "macs_g", "MACs", f"MACs per {frames}-frame input (G), log scale")):
        x = m[f"{col}_mean"].to_numpy(float)
        ok = np.isfinite(y) & (y > 0)
        if not ok.any():
            _note(ax, "no training energy > 0 for any architecture" if np.isfinite(y).any()
                  else "no training energy measured")
            ax.set_xlabel(xlabel)
            continue
        ax.scatter(x[ok], y[ok], color="#4c72b0", zorder=3)
        _label_points(ax, x[ok], y[ok], [n for n, k in zip(m.index, ok, strict=True) if k])
        _loglog_fit(ax, x, y, xname)
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axis(ax.xaxis, float(x[ok].min()), float(x[ok].max()))
        plain_log_axis(ax.yaxis, float(y[ok].min()), float(y[ok].max()))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"training energy ({unit}{est}), log scale")
        ax.margins(x=0.12, y=0.12)
        ax.grid(True, which="both", alpha=0.25)
    fig.suptitle("Training energy against model size", fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def inference_energy_vs_eer(frame: pd.DataFrame, out: Path) -> Path:
    """Inference energy per trial (embedding the test set + scoring) against EER."""
    eer_col = primary_eer_column(frame)
    m = _means(frame)
    x = m["inference_j_per_trial_mean"].to_numpy(float)
    unit = "J"
    if np.isfinite(x).any() and np.nanmedian(x) < 0.1:
        x, unit = x * 1e3, "mJ"
    xerr, xwhat = error_bars(m, "inference_j_per_trial", 1e3 if unit == "mJ" else 1)
    yerr, ywhat = error_bars(m, eer_col)
    est = ", estimated" if _estimated(frame["inference_energy_basis"]) else ""
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    _trade_off_panel(ax, x, xerr, m[f"{eer_col}_mean"].to_numpy(float), yerr, list(m.index),
                     f"inference energy per trial ({unit}{est}), log scale",
                     f"EER (%), {eer_col.removeprefix('eer_cosine_')}, cosine", with_knee=False,
                     bars=_bars_text(xwhat, ywhat))
    ax.set_title("Accuracy against the energy of using the model")
    fig.tight_layout()
    return _save(fig, out)


def stage_families(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Groups of architectures with the same block type, widths and number of blocks, but different
    stage distributions (the study's constant-depth comparison); only groups of ≥ 2."""
    m = by_arch(frame)
    m["depth"] = m["stages"].map(lambda s: sum(int(d) for d in str(s).split("-")))
    families = []
    for _, g in m.groupby(["block", "widths", "depth"], sort=False):
        if g["stages"].nunique() >= 2:
            families.append(g)
    return families


def stage_distribution(frame: pd.DataFrame, out: Path) -> Path:
    """Each constant-depth family side by side: EER and training energy of its stage distributions."""
    eer_col = primary_eer_column(frame)
    families = stage_families(frame)
    scale, unit = energy_unit(frame["train_energy_kwh"].to_numpy(float))
    est = ", estimated" if _estimated(frame["train_energy_basis"]) else ""
    n = max(len(families), 1)
    fig, axes = plt.subplots(2, n, figsize=(max(4.2 * n, 5.5), 5.6), squeeze=False)
    if not families:
        for ax in axes[:, 0]:
            ax.set_axis_off()
        _note(axes[0, 0], "no stage-distribution family in this grid:\nit needs ≥ 2 architectures with the same "
                          "block type,\nwidths and number of blocks but different stage depths")
        return _save(fig, out)
    for j, fam in enumerate(families):
        labels = [f"{a}\n{s}" for a, s in zip(fam["arch"], fam["stages"], strict=True)]
        xs = np.arange(len(fam))
        for i, (col, ylabel, colour) in enumerate(((f"{eer_col}_mean", "EER (%)", "#4c72b0"),
                                                   ("train_energy_kwh_mean", f"training energy ({unit}{est})",
                                                    "#dd8452"))):
            ax = axes[i, j]
            values = fam[col].to_numpy(float) * (scale if "energy" in col else 1)
            sd = fam[col.replace("_mean", "_sd")].to_numpy(float) * (scale if "energy" in col else 1)
            ax.bar(xs, np.nan_to_num(values), yerr=np.nan_to_num(sd), color=colour, width=0.6, capsize=3,
                   hatch="//" if ("energy" in col and est) else "", edgecolor="white")
            for x, v in zip(xs, values, strict=True):
                ax.text(x, v if np.isfinite(v) else 0, f"{v:.3g}" if np.isfinite(v) else
                        ("no energy" if "energy" in col else "no EER"), ha="center", va="bottom", fontsize=7,
                        color="#222")
            ax.margins(y=0.1)
            ax.set_xticks(xs, labels if i == 1 else [""] * len(xs), fontsize=7)
            ax.set_ylabel(ylabel)
            ax.grid(True, axis="y", alpha=0.25)
        fam0 = fam.iloc[0]
        axes[0, j].set_title(f"{fam0['depth']} {fam0['block']} blocks, widths {fam0['widths']}")
    fig.suptitle("Stage distribution at constant depth (stage depths under each name)", fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def power_series(trace: pd.DataFrame) -> pd.DataFrame:
    """Power (W) per component over wall-clock seconds: counters differentiated, power read as is.

    Channels of one component (several GPUs) are summed on a common time grid.
    """
    rows = trace[trace["quantity"].isin(["energy", "power"])].dropna(subset=["value"])
    if "session" in rows:  # a streamed chunk: a counter is differentiated within its own sidecar session
        own = rows["channel"] + "@" + rows["session"]
        rows = rows.assign(channel=rows["channel"].where(rows["session"] == "", own))
    if rows.empty:
        return pd.DataFrame(columns=["t", "channel", "component", "watts", "estimated"])
    parts = []
    for (sensor, channel, quantity), g in rows.groupby(["sensor", "channel", "quantity"], sort=True):
        if quantity == "power" and ((rows["sensor"] == sensor) & (rows["channel"] == channel)
                                    & (rows["quantity"] == "energy")).any():
            continue  # the counter of the same channel is the better figure
        t = g["t_wall_ns"].to_numpy(np.float64) / 1e9
        v = g["value"].to_numpy(np.float64)
        if quantity == "energy":
            if len(t) < 2:
                continue
            dt, de = np.diff(t), np.diff(v)
            keep = (dt > 0) & (de >= 0)  # a counter restart (new attempt) is a gap, not negative power
            t, v = ((t[1:] + t[:-1]) / 2)[keep], (de / np.where(dt > 0, dt, 1))[keep]
        parts.append(pd.DataFrame({"t": t, "channel": f"{sensor}/{channel}", "component": str(g["component"].iloc[0]),
                                   "watts": v,
                                   "estimated": bool(g["estimated"].any())}))
    if not parts:
        return pd.DataFrame(columns=["t", "channel", "component", "watts", "estimated"])
    return pd.concat(parts, ignore_index=True)


TIMELINE_BINS = 600  # points across a timeline: what a panel can show, whatever the trace's length


def binned_power(trace_path: Path, bins: int = TIMELINE_BINS) -> pd.DataFrame:
    """Mean power per channel in ``bins`` equal slices of the trace's wall-clock span, streamed (bounded
    memory for a trace of any length); the columns of :func:`power_series`, ``t`` at each slice's centre
    (empty slices are left out)."""
    from svbench.instrument.trace import iter_trace, wall_range

    span = wall_range(trace_path)
    if span is None:
        return power_series(pd.DataFrame(columns=["quantity", "value"]))
    edges = np.linspace(span[0] / 1e9, span[1] / 1e9, bins + 1)
    sums: dict[tuple, np.ndarray] = {}
    counts: dict[tuple, np.ndarray] = {}
    meta: dict[tuple, tuple[str, bool]] = {}
    for chunk in iter_trace(Path(trace_path)):
        part = power_series(chunk)
        for (channel, component), g in part.groupby(["channel", "component"], sort=False):
            k = np.clip(np.searchsorted(edges, g["t"].to_numpy(), side="right") - 1, 0, bins - 1)
            key = (channel, component)
            sums[key] = sums.get(key, np.zeros(bins)) + np.bincount(k, g["watts"].to_numpy(), bins)
            counts[key] = counts.get(key, np.zeros(bins)) + np.bincount(k, minlength=bins)
            meta[key] = (component, meta.get(key, (component, False))[1] or bool(g["estimated"].any()))
    centres = (edges[:-1] + edges[1:]) / 2
    parts = [pd.DataFrame({"t": centres[counts[key] > 0], "channel": key[0], "component": key[1],
                           "watts": (sums[key] / np.where(counts[key] > 0, counts[key], 1))[counts[key] > 0],
                           "estimated": meta[key][1]}) for key in sums]
    return pd.concat(parts, ignore_index=True) if parts else power_series(pd.DataFrame(columns=["quantity", "value"]))


def _timeline_panel(ax: plt.Axes, trace: Path, markers: Path, title: str) -> None:
    series = binned_power(trace)
    ax.set_title(title, fontsize=8)
    if series.empty:
        _note(ax, f"no power over time in {Path(trace).name} (power readings, or energy counters read twice)"
              if Path(trace).exists() else f"no {Path(trace).name}")
        return
    t0 = series["t"].min()
    span = series["t"].max() - t0
    div, tunit = (60.0, "min") if span > 600 else (1.0, "s")
    grid = np.linspace(t0, series["t"].max(), 600)
    stack, labels, colours = [], [], []
    for comp in ("gpu", "cpu", "dram"):
        part = series[series["component"] == comp]
        if part.empty:
            continue
        total = np.zeros_like(grid)
        for _, g in part.groupby("channel"):
            g = g.sort_values("t")
            total += np.interp(grid, g["t"], g["watts"], left=np.nan, right=np.nan)
        stack.append(np.nan_to_num(total))
        labels.append(COMPONENT_LABELS[comp] + (" (est.)" if part["estimated"].any() else ""))
        colours.append(COMPONENT_COLOURS[comp])
    if stack:
        ax.stackplot((grid - t0) / div, *stack, labels=labels, colors=colours, alpha=0.6, lw=0, zorder=2)
    node = series[series["component"] == "node"].sort_values("t")
    if len(node):
        ax.plot((node["t"] - t0) / div, node["watts"], color="k", lw=1, label="node meter")
    # phases shaded: each name its own colour, alternating shades for numbered spans (epochs)
    marks = pair_phases(read_markers(markers))
    shade = ["#b3cde3", "#decbe4", "#fed9a6", "#e5d8bd", "#fddaec", "#cccccc"]  # clear of the component colours
    names = [p for p in dict.fromkeys(ph.name for ph in marks) if p not in ("job",)]
    for ph in marks:
        if ph.name == "job":
            continue
        a = (ph.start_wall_ns / 1e9 - t0) / div
        b = ((ph.stop_wall_ns / 1e9 if ph.stop_wall_ns else series["t"].max()) - t0) / div
        colour = shade[names.index(ph.name) % len(shade)]
        even = (ph.index or 0) % 2 == 0
        ax.axvspan(a, b, color=colour, alpha=0.35 if even else 0.15, lw=0, zorder=0)
        # a strip along the top names the phase even where the power area covers the shading
        ax.axvspan(a, b, ymin=0.9, ymax=0.97, color=colour, alpha=1.0 if even else 0.6, lw=0, zorder=1,
                   label=ph.name if ph.index in (None, 0) else None)
    top = max(float(np.sum(stack, axis=0).max()) if stack else 0.0,
              float(node["watts"].max()) if len(node) else 0.0)
    if top > 0:
        ax.set_ylim(0, top * 1.6)  # room for the legend and the phase strip above the data
    ax.set_xlabel(f"time since the job began ({tunit})", fontsize=7)
    ax.set_ylabel("power (W)", fontsize=7)
    ax.tick_params(labelsize=7)
    handles, hl = ax.get_legend_handles_labels()
    uniq = dict(zip(hl, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), fontsize=6, loc="upper left", bbox_to_anchor=(0, 0.9), ncol=3,
              frameon=False)


def power_timeline(results: Path | Layout, step: str, jobs: list[tuple[str, int]], out: Path, ncols: int = 3) -> Path:
    """Small multiple: one panel per job of ``step`` and node, power stacked by component, phases shaded; the
    training timeline shows a fine-tuned model's own training job, its large-margin fine-tuning. Each node of a
    multi-node job has its own panel: its samples with its own phases, never another node's."""
    layout = Layout.of(results)
    panels = []
    for arch, seed in jobs:
        own = Model.named(arch).steps[0] if step == "train" else step
        energy = Path(layout.energy(own, arch, seed))
        nodes = job_nodes(read_energy(energy)) if energy.exists() else 1
        for rank, folder in enumerate(layout.node_dirs(own, arch, seed, nodes)):
            title = f"{arch}, seed {seed}" + (f", {node_name(rank)} of {nodes}" if nodes > 1 else "")
            panels.append((Path(folder), title))
    n = max(len(panels), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    if not panels:
        _note(axes[0, 0], "no jobs")
    for ax, (folder, title) in zip(axes.flat, panels, strict=False):
        _timeline_panel(ax, trace_path(folder), folder / MARKERS, title)
    title = "training and large-margin fine-tuning (+lm)" if step == "train" and any(
        Model.named(arch).fine_tuned for arch, _ in jobs) else STEP_TITLES[step]
    fig.suptitle(f"Power during {title} (shaded: the job's phases)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the title above the first row
    return _save(fig, out)


def make_figures(summary: Path, out_dir: Path, phases: Path | None = None,
                 results: Path | Layout | None = None, by_arch: Path | None = None) -> list[Path]:
    """Every figure of the study into ``out_dir``; the timelines need ``results`` (traces, markers), the
    error bars of the trade-off figures the intervals of ``by_arch`` (``summary_by_arch.csv``; ± sd without)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = read_summary(summary)
    if by_arch is not None:
        frame.attrs["by_arch"] = pd.read_csv(by_arch)
    phase_frame = pd.read_csv(phases) if phases and Path(phases).exists() else pd.DataFrame(
        columns=["arch", "seed", "step", "phase", "energy_j", "basis"])
    # the figures of size and stage distribution are of the grid's trained models; fine-tuned ones are
    # points of the trade-off
    trained = frame[[not Model.named(a).fine_tuned for a in frame["arch"]]]
    made = [eer_vs_training_energy(frame, out_dir / "eer_vs_training_energy.png"),
            energy_by_component(phase_frame, out_dir / "energy_by_component.png"),
            energy_by_phase(phase_frame, out_dir / "energy_by_phase.png"),
            idle_vs_dynamic(phase_frame, out_dir / "idle_vs_dynamic.png"),
            energy_vs_size(trained, out_dir / "energy_vs_size.png"),
            inference_energy_vs_eer(frame, out_dir / "inference_energy_vs_eer.png"),
            stage_distribution(trained, out_dir / "stage_distribution.png")]
    jobs = list(zip(frame["arch"], frame["seed"].astype(int), strict=True))
    layout = Layout.of(results) if results is not None else Layout()
    for step in STEPS:
        made.append(power_timeline(layout, step, jobs,
                                   out_dir / f"power_timeline_{step}.png"))
    return made
