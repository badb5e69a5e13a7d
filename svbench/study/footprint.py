"""The whole study's footprint: every measured job of every step, every attempt, in one table.

A reviewer of an energy study asks first what the whole study cost. Every job that ran under ``svbench monitor``
has its ``energy.csv`` under ``results/energy/<step>/…`` (data preparation, training, fine-tuning, embedding,
scoring, the study's analysis); this module reads them all, attempt by attempt (the ``job`` phase of each
attempt, :func:`svbench.study.summary.energy_of`), and adds them up per step and in total:

- energy, with its interval (each sensor family's tolerance, one error shared by every job
  (:func:`svbench.uncertainty.draws.sensor_errors`), and each job's coverage gaps, summed), split into idle and
  dynamic (the idle baseline's power times the span);
- attempts that did not finish (killed, preempted, failed) shown apart and **included** in the total: their
  energy was spent;
- operational CO2e (energy × PUE × intensity, with the factors' ranges) and embodied CO2e (GPU- and node-hours
  × the embodied factors), node-hours and GPU-hours.

A job without a measured total (no sensor) is counted as a job and left out of the energy, named in ``notes``:
never zero. The footprint's own job and the report's (they read small tables) are not measured.
"""

from __future__ import annotations

import glob
import logging
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.energy import embodied_g, factors_from_config, node_rows, rows_g, total_rows
from svbench.errors import UserError
from svbench.layout import ENERGY, FOOTPRINT, FOOTPRINT_JOBS, FOOTPRINT_RULES, MEASURED_STEPS, WORK_STEPS, Layout
from svbench.study.summary import energy_of, read_job_folder
from svbench.uncertainty.draws import carbon_ratio_draws, interval_of, measured_energy_draws, sensor_errors
from svbench.uncertainty.score_intervals import UncertaintySettings
from svbench.uncertainty.study_draws import sensor_tolerances

log = logging.getLogger("svbench.study")

# the steps in the order the study runs them
STEP_ORDER = ("corpus", "convert", "features", *MEASURED_STEPS, "intervals", "study")
assert set(STEP_ORDER) == {*WORK_STEPS, *MEASURED_STEPS}, "a measured step the footprint would not read"
JOB_COLUMNS = ["step", "job", "attempt", "complete", "seconds", "nodes", "gpus", "energy_j", "idle_j", "dynamic_j",
               "operational_co2e_g", "embodied_gpu_co2e_g", "embodied_server_co2e_g", "basis", "notes"]


@dataclass(frozen=True)
class MeasuredFolder:
    """One measured job's folder: its step (``results/energy/<step>/…``) and its name below the step."""

    step: str
    job: str
    folder: Path


def measured_folders(results: Path | Layout, energy_files: Iterable[Path] | None = None) -> list[MeasuredFolder]:
    """The folders of ``energy_files`` (the study's jobs, as the workflow lists them), or, without them, every job
    folder with an ``energy.csv`` under the results' energy folder (a folder of a job the study no longer has
    too); in step order."""
    layout = Layout.of(results)
    root = Path(layout.path("energy"))
    if energy_files is not None:
        return sorted((_folder_of(Path(path), root) for path in energy_files), key=lambda f: STEP_ORDER.index(f.step))
    found = []
    for step in STEP_ORDER:
        # a model's job is <step>/<arch>/seed<n>, a job of WORK_STEPS <step>/<job>
        pattern = f"*/seed*/{ENERGY}" if step in MEASURED_STEPS else f"*/{ENERGY}"
        for path in sorted(glob.glob(glob.escape(str(root / step)) + "/" + pattern)):
            folder = Path(path).parent
            found.append(MeasuredFolder(step, folder.relative_to(root / step).as_posix(), folder))
    return found


def _folder_of(energy: Path, root: Path) -> MeasuredFolder:
    """The job of an ``energy.csv`` at ``root/<step>/<job…>/``; a UserError naming a path anywhere else."""
    try:
        step, _, job = energy.parent.relative_to(root).as_posix().partition("/")
    except ValueError:
        step = job = ""
    if step not in STEP_ORDER or not job:
        raise UserError(f"{energy}: not the energy.csv of a measured job under {root}/<step>/")
    return MeasuredFolder(step, job, energy.parent)


def _attempt_rows(folder: MeasuredFolder, factors: dict) -> list[dict]:
    """One row per attempt of one job: its energy (with the draws' inputs), idle and dynamic, carbon, hours."""
    frame, _, gpus, markers = read_job_folder(folder.folder)
    nodes = len(markers)
    rows = []
    attempts = frame.loc[frame["phase"] == "job", "attempt"].dropna().unique()
    for attempt in sorted(attempts):
        of_attempt = frame[frame["attempt"] == attempt]
        job = of_attempt[of_attempt["phase"] == "job"]
        energy = energy_of(of_attempt, "job", gpus=gpus)
        hours = energy["seconds"] / 3600 if math.isfinite(energy["seconds"]) else math.nan
        gpu_g, server_g = (embodied_g(hours, gpus, factors["gpu_kg_per_hour"], factors["server_kg_per_hour"],
                                      servers=nodes) if math.isfinite(hours) else (math.nan, math.nan))
        # the job's own rows (node = all: every node complete) where it ran on several nodes, else its one node's
        whole = job[job["node"].astype(str) == "all"] if "node" in job and (job["node"] == "all").any() else job
        complete = bool(len(whole)) and bool(whole["complete"].astype(str).isin(["True", "true", "1"]).all())
        operational = rows_g(total_rows(node_rows(job)), factors["pue"], factors["intensity"]) \
            if energy["energy_j"] > 0 else math.nan
        rows.append({"step": folder.step, "job": folder.job, "attempt": int(attempt), "complete": complete,
                     "seconds": energy["seconds"], "nodes": nodes, "gpus": gpus if gpus is not None else math.nan,
                     "energy_j": energy["energy_j"], "idle_j": energy["idle_j"], "dynamic_j": energy["dynamic_j"],
                     "operational_co2e_g": operational, "embodied_gpu_co2e_g": gpu_g,
                     "embodied_server_co2e_g": server_g, "basis": energy["basis"],
                     "notes": "" if energy["energy_j"] > 0 else "no measured total: left out of the energy",
                     "by_sensor": energy["by_sensor"], "gap_j": energy["gap_j"]})
    return rows


def footprint_jobs(results: Path | Layout, config: dict, energy_files: Iterable[Path] | None = None) -> pd.DataFrame:
    """One row per attempt of every measured job (:func:`measured_folders`), with ``by_sensor`` and ``gap_j``,
    the draws' inputs."""
    factors = factors_from_config(config.get("carbon"))
    rows = [row for folder in measured_folders(results, energy_files) for row in _attempt_rows(folder, factors)]
    return pd.DataFrame(rows, columns=[*JOB_COLUMNS, "by_sensor", "gap_j"])


def _gpu_sum(part: pd.DataFrame, values: pd.Series) -> float:
    """A sum over jobs of a figure that needs each job's GPU count: empty when a measured job's count is unknown
    (no sensor said how many GPUs it had), never the sum of the others passing for the step's."""
    return math.nan if part["gpus"].isna().any() else _sum(values)


def _sum(values: pd.Series) -> float:
    """A sum that stays empty (NaN) when every value is, never 0 for what was not measured."""
    return float(values.sum(min_count=1))


def _split(part: pd.DataFrame, column: str) -> float:
    """Idle or dynamic joules of a step: empty unless every measured attempt has its split (a sum over the jobs
    with a baseline would pass for the whole step's)."""
    measured = part[part["energy_j"] > 0]
    return float(measured[column].sum()) if len(measured) and measured[column].notna().all() else math.nan


def footprint_table(jobs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Per step (in :data:`STEP_ORDER`) and a ``total`` row: jobs, attempts, unfinished attempts and their energy,
    node- and GPU-hours, energy [interval], idle and dynamic, operational CO2e [interval], embodied CO2e. The
    intervals are the config's ``uncertainty`` block's: its draws (``resamples``), seed and level, as the summary's."""
    settings = UncertaintySettings.from_config(config.get("uncertainty") or {})
    n, seed, level = settings.resamples, settings.seed, settings.level
    factors = factors_from_config(config.get("carbon"))
    tolerances = sensor_tolerances(config.get("energy") or {})
    rng = np.random.default_rng([seed, zlib.crc32(b"footprint")])
    ratios = carbon_ratio_draws(factors, rng, n)
    grid, gpu_ratio, server_ratio = ratios["pue"] * ratios["intensity"], ratios["gpu"], ratios["server"]
    errors = sensor_errors([s for by_sensor in jobs["by_sensor"] if by_sensor for s in by_sensor], rng, n)
    draws = np.zeros((len(jobs), n))
    for i, row in enumerate(jobs.itertuples()):
        if row.energy_j > 0 and row.by_sensor:
            draws[i] = measured_energy_draws(row.by_sensor, row.gap_j, tolerances, np.random.default_rng([seed, i]), n,
                                             errors)
    steps = [s for s in STEP_ORDER if s in set(jobs["step"])]
    out = []
    for name, mask in [(s, (jobs["step"] == s).to_numpy()) for s in steps] + [("total", np.ones(len(jobs), bool))]:
        part = jobs[mask]
        energy = draws[mask].sum(axis=0)
        co2 = (part["operational_co2e_g"].fillna(0).to_numpy() @ (draws[mask] / np.where(
            part["energy_j"].to_numpy() > 0, part["energy_j"].to_numpy(), np.inf)[:, None])) * grid
        embodied = (_gpu_sum(part, part["embodied_gpu_co2e_g"]) * gpu_ratio + _sum(part["embodied_server_co2e_g"])
                    * server_ratio)
        unfinished = part[~part["complete"].astype(bool)]
        unmeasured = part[~(part["energy_j"] > 0)]
        e_low, e_high = interval_of(energy / 3.6e6, level)
        c_low, c_high = interval_of(co2, level)
        m_low, m_high = interval_of(embodied, level)
        out.append({
            "step": name, "jobs": len(part.drop_duplicates(["step", "job"])), "attempts": len(part),
            # no unfinished attempt spent nothing (0); unfinished attempts without a sensor total stay empty
            "unfinished_attempts": len(unfinished),
            "unfinished_kwh": _sum(unfinished["energy_j"]) / 3.6e6 if len(unfinished) else 0.0,
            "node_hours": _sum(part["seconds"] * part["nodes"]) / 3600,
            "gpu_hours": _gpu_sum(part, part["seconds"] * part["gpus"]) / 3600,
            "energy_kwh": _sum(part["energy_j"]) / 3.6e6, "energy_kwh_low": e_low, "energy_kwh_high": e_high,
            "idle_kwh": _split(part, "idle_j") / 3.6e6, "dynamic_kwh": _split(part, "dynamic_j") / 3.6e6,
            "operational_co2e_g": _sum(part["operational_co2e_g"]), "operational_co2e_g_low": c_low,
            "operational_co2e_g_high": c_high,
            "embodied_co2e_g": _gpu_sum(part, part["embodied_gpu_co2e_g"]) + _sum(part["embodied_server_co2e_g"]),
            "embodied_co2e_g_low": m_low, "embodied_co2e_g_high": m_high,
            # jobs whose energy is (partly) the estimate, not a sensor's: the sentence and the figure say so
            "estimated_jobs": _jobs_with_basis(part, "estimated"),
            # jobs whose total lacks a node or GPUs no sensor read (summary.energy_of): a lower bound, said so
            "partial_jobs": _jobs_with_basis(part, "partial"),
            "unmeasured_jobs": ", ".join(sorted(set(unmeasured["step"] + "/" + unmeasured["job"])))})
    return pd.DataFrame(out)


def _jobs_with_basis(part: pd.DataFrame, word: str) -> int:
    return len(part[part["basis"].astype(str).str.contains(word)].drop_duplicates(["step", "job"]))


def footprint_sentence(table: pd.DataFrame) -> str:
    """The footprint in one sentence, with its intervals: the report's opening line."""
    if not len(table):
        return "No job of the study was measured: its footprint is unknown."
    t = table.set_index("step").loc["total"]
    n = int(t["unfinished_attempts"])
    unfinished = (f"; {_num(t['unfinished_kwh'])} kWh of it in {n} attempt{'s' if n > 1 else ''} that did not "
                  "finish, included" if n else "")
    unmeasured = f" Not measured (no sensor total): {t['unmeasured_jobs']}." if t["unmeasured_jobs"] else ""
    k = int(t.get("partial_jobs", 0))
    partial = (f" {k} job{'s' if k > 1 else ''} partly measured (a node or GPUs no sensor read): the total is a "
               "lower bound." if k else "")
    return (f"The whole study used {_num(t['energy_kwh'])} kWh{_estimated(t)} [{_num(t['energy_kwh_low'])}, "
            f"{_num(t['energy_kwh_high'])}] over {int(t['jobs'])} measured jobs ({int(t['attempts'])} attempts"
            f"{unfinished}): {_mass(t, 'operational_co2e_g')} CO2e operational and {_mass(t, 'embodied_co2e_g')} "
            f"embodied, {_num(t['node_hours'])} node-hours.{unmeasured}{partial}")


def _estimated(row: pd.Series) -> str:
    """`` (estimated)`` where every job's energy is the estimate, `` (k of n jobs estimated)`` where some are."""
    n, k = int(row["jobs"]), int(row.get("estimated_jobs", 0))
    return "" if not k else " (estimated: no sensor was readable)" if k == n else f" ({k} of {n} jobs estimated)"


def _mass(row: pd.Series, column: str) -> str:
    """``12.3 g [11.9, 12.8]`` or ``1.2 kg [1.1, 1.3]``: grams below a kilogram."""
    scale, unit = (1000.0, "kg") if row[column] >= 1000 else (1.0, "g")
    low, high = row[f"{column}_low"] / scale, row[f"{column}_high"] / scale
    bounds = f" [{_num(low)}, {_num(high)}]" if math.isfinite(low) and math.isfinite(high) else ""
    return f"{_num(row[column] / scale)} {unit}{bounds}"


def _num(v: float) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.3g}"


# the per-rule table of the report: the rule each step's jobs ran under (the study step: study_<job>)
RULES = {"corpus": "corpus_{job}", "convert": "corpus_convert", "features": "features_shard",
         "intervals": "score_intervals", "study": "study_{job}"}


def rule_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per Snakemake rule: jobs, attempts, runtime (hours, every attempt), energy and CO2e: what the report's own
    rule list lacks."""
    if not len(jobs):
        return pd.DataFrame(columns=["rule", "jobs", "attempts", "runtime_h", "energy_kwh", "operational_co2e_g",
                                     "embodied_co2e_g"])
    rules = [RULES.get(s, s).format(job=j) for s, j in zip(jobs["step"], jobs["job"], strict=True)]
    frame = jobs.assign(rule=rules)
    out = frame.groupby("rule", sort=False).agg(
        jobs=("job", "nunique"), attempts=("attempt", "size"), runtime_h=("seconds", lambda s: _sum(s) / 3600),
        energy_kwh=("energy_j", lambda s: _sum(s) / 3.6e6), operational_co2e_g=("operational_co2e_g", _sum),
        embodied_gpu=("embodied_gpu_co2e_g", _sum), embodied_server=("embodied_server_co2e_g", _sum))
    out["embodied_co2e_g"] = out.pop("embodied_gpu") + out.pop("embodied_server")
    return out.reset_index()


def footprint_figure(table: pd.DataFrame, out: Path, level: float) -> Path:
    """Energy per step, idle and dynamic stacked, what unfinished attempts spent hatched over them, with the
    interval of each step's energy; the total in the title."""
    from svbench.study.figures import energy_unit, plt  # matplotlib, headless: only when drawing

    steps = table[table["step"] != "total"].iloc[::-1]
    scale, unit = energy_unit(steps["energy_kwh"].to_numpy(float))
    energy = (steps["energy_kwh"] * scale).to_numpy(float)
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(steps), 3) + 1.4))
    y = np.arange(len(steps))
    split = steps["idle_kwh"].notna().to_numpy()  # without an idle baseline the split is unknown: not "dynamic"
    idle = (steps["idle_kwh"].fillna(0) * scale).to_numpy()
    dynamic = np.where(split, np.clip(np.nan_to_num(energy) - idle, 0, None), 0.0)
    ax.barh(y, idle, color="#9db4c0", label="idle (baseline power × time)")
    ax.barh(y, dynamic, left=idle, color="#c2410c", label="dynamic")
    if not split.all():
        ax.barh(y[~split], np.nan_to_num(energy)[~split], color="#bbbbbb", label="not split (no idle baseline)")
    ax.barh(y, (steps["unfinished_kwh"].fillna(0) * scale).to_numpy(), fill=False, hatch="///", edgecolor="black",
            linewidth=0, label="in attempts that did not finish (included)")
    low, high = (steps["energy_kwh_low"] * scale).to_numpy(float), (steps["energy_kwh_high"] * scale).to_numpy(float)
    err = np.vstack([np.nan_to_num(np.clip(energy - low, 0, None)), np.nan_to_num(np.clip(high - energy, 0, None))])
    ax.errorbar(np.nan_to_num(energy), y, xerr=err, fmt="none", ecolor="black", capsize=3)
    ax.set_yticks(y, [f"{s} ({int(j)} job{'s' if j > 1 else ''})"
                      for s, j in zip(steps["step"], steps["jobs"], strict=True)])
    ax.set_xlabel(f"energy ({unit}; bars: {level:.0%} interval)")
    if "total" in set(table["step"]):
        t = table.set_index("step").loc["total"]
        ax.set_title(f"The study's footprint: {_num(t['energy_kwh'] * scale)} {unit} "
                     f"[{_num(t['energy_kwh_low'] * scale)}, {_num(t['energy_kwh_high'] * scale)}]"
                     f"\n{int(t['jobs'])} jobs, {int(t['attempts'])} attempts{_estimated(t)}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)  # a reader never sees half a figure
    return out


def write_footprint(results: Path | Layout, config: dict, out_dir: Path,
                    energy_files: Iterable[Path] | None = None) -> pd.DataFrame:
    """``footprint.csv/.html/.tex`` (per step and total), ``footprint_jobs.csv`` (every attempt),
    ``footprint_rules.html`` (per rule) and ``footprint.png`` into ``out_dir``; the sentence in
    ``footprint.txt``. Returns the step table."""
    from svbench.fileio import write_text_atomic
    from svbench.study.tables import write_table

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = footprint_jobs(results, config, energy_files)
    table = footprint_table(jobs, config)
    write_table(table, out_dir / FOOTPRINT, "The whole study's footprint: every measured job, every attempt")
    write_text_atomic(out_dir / f"{FOOTPRINT_JOBS}.csv", jobs.drop(columns=["by_sensor", "gap_j"]).to_csv(index=False))
    write_table(rule_table(jobs), out_dir / FOOTPRINT_RULES, "Energy and CO2e per Snakemake rule, beside its "
                "runtime (every attempt)")
    footprint_figure(table, out_dir / f"{FOOTPRINT}.png",
                     UncertaintySettings.from_config(config.get("uncertainty") or {}).level)
    sentence = footprint_sentence(table)
    write_text_atomic(out_dir / f"{FOOTPRINT}.txt", sentence + "\n")
    log.info("%s", sentence)
    return table
