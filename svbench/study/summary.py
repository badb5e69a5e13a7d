"""The study summary: one row per architecture and seed, joined from every step's own files.

Energy of a job: the node meter when there is one (it covers everything), else the sum of the
measured components (GPU + CPU package + DRAM). A job with no sensor at all has an empty energy, never
zero. ``*_energy_basis`` says whether the figure is measured, estimated (the CPU-time model) or both.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.corpus.manifest import read_manifest
from svbench.energy.carbon import Factor, Intensity, embodied_g, factors_from_config, gpu_count, operational_g
from svbench.energy.join import energy_basis, total_rows
from svbench.energy.markers import read_markers
from svbench.study.analysis import by_arch, mean_sd_text
from svbench.study.grid import specs_from_grid
from svbench.study.tables import write_table

log = logging.getLogger("svbench.study")

STEPS = ("train", "embed", "score")
COMPONENTS = ("gpu", "cpu", "dram", "node")


def energy_of(frame: pd.DataFrame, phase: str) -> dict:
    """Total energy of all spans named ``phase`` (all attempts), with basis, coverage and time span."""
    rows = frame[frame["phase"] == phase] if len(frame) else frame
    out = {"energy_j": math.nan, "basis": "not measured", "coverage": math.nan, "seconds": math.nan,
           "start_ns": None, "end_ns": None} | {f"{c}_j": math.nan for c in COMPONENTS}
    if rows is None or len(rows) == 0:
        return out
    for c in COMPONENTS:
        part = rows[rows["component"] == c]
        if len(part):
            out[f"{c}_j"] = float(part["energy_j"].sum(min_count=1))
    used = total_rows(rows)
    if not len(used):
        return out
    out["energy_j"] = float(used["energy_j"].sum(min_count=1))
    out["basis"] = energy_basis(used)
    out["coverage"] = float(used["coverage"].min())
    spans = used.drop_duplicates(["attempt", "index", "t_start_wall_ns"])
    out["seconds"] = float(spans["seconds"].sum())
    out["start_ns"], out["end_ns"] = int(used["t_start_wall_ns"].min()), int(used["t_end_wall_ns"].max())
    return out


def _carbon_g(frame: pd.DataFrame, phase: str, pue: Factor, intensity: Intensity) -> float:
    """Operational gCO2e of every span named ``phase``, each at the mean intensity of its own time span
    (a job resumed after preemption: each attempt at the grid intensity of its own hours)."""
    if math.isnan(energy_of(frame, phase)["energy_j"]):
        return math.nan
    used = total_rows(frame[frame["phase"] == phase])
    return float(sum(operational_g(r.energy_j, int(r.t_start_wall_ns), int(r.t_end_wall_ns), pue, intensity)
                     for r in used.itertuples()))


def _read_energy(path: Path) -> pd.DataFrame:
    if not path.exists():
        log.warning("%s missing: energy left empty", path)
        return pd.DataFrame(columns=["phase", "component", "energy_j", "estimated"])
    return pd.read_csv(path)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def summary_rows(results: Path, config: dict) -> list[dict]:
    """One dict per (architecture, seed) of the config's grid."""
    results = Path(results)
    specs = specs_from_grid(config["grid"])
    f = factors_from_config(config["carbon"])
    pue, intensity = f["pue"], f["intensity"]
    test_utts = read_manifest(results / "corpus" / "test.tsv")
    audio_hours = sum(u.seconds for u in test_utts) / 3600
    rows = []
    for spec in specs:
        for seed in config.get("seeds", [0]):
            where = f"{spec.name}/seed{seed}"
            info = json.loads((results / "models" / where / "spec.json").read_text())
            metrics = json.loads((results / "scores" / where / "metrics.json").read_text())
            row: dict = {"arch": spec.name, "seed": seed, "block": spec.block,
                         "stages": "-".join(map(str, spec.stages)), "widths": "-".join(map(str, spec.stage_widths)),
                         "params_m": info["params"] / 1e6, "macs_g": info["macs"] / 1e9,
                         "macs_frames": info.get("macs_frames", 200),
                         "epochs": info.get("epochs"), "samples_per_epoch": info.get("samples_per_epoch")}
            n_trials = 0
            for name, m in metrics.items():
                if not isinstance(m, dict):
                    continue
                n_trials += m["trials"]
                for backend, values in m.items():
                    if isinstance(values, dict):
                        row[f"eer_{backend}_{name}"] = 100 * values["eer"]
                        row[f"min_dcf_0.01_{backend}_{name}"] = values["min_dcf_0.01"]
                        row[f"min_dcf_0.05_{backend}_{name}"] = values["min_dcf_0.05"]
            energy = {step: _read_energy(results / "energy" / step / where / "energy.csv") for step in STEPS}
            train = energy_of(energy["train"], "job")
            row |= {"train_energy_kwh": train["energy_j"] / 3.6e6, "train_hours": train["seconds"] / 3600,
                    "train_energy_basis": train["basis"], "train_coverage": train["coverage"]}
            row |= {f"train_{c}_kwh": train[f"{c}_j"] / 3.6e6 for c in COMPONENTS}
            embed_test = energy_of(energy["embed"], "embed_test")
            score = energy_of(energy["score"], "score")
            infer_j = embed_test["energy_j"] + score["energy_j"]
            row |= {"embed_test_energy_j": embed_test["energy_j"], "score_energy_j": score["energy_j"],
                    "inference_j_per_utt": embed_test["energy_j"] / max(len(test_utts), 1),
                    "inference_j_per_trial": infer_j / n_trials if n_trials else math.nan,
                    "inference_kj_per_audio_hour":
                        embed_test["energy_j"] / 1e3 / audio_hours if audio_hours else math.nan,
                    "inference_energy_basis": embed_test["basis"]}
            train_g = _carbon_g(energy["train"], "job", pue, intensity)
            infer_g = sum(_carbon_g(energy[s], "job", pue, intensity) for s in ("embed", "score"))
            # embodied: each step's hours on its own real GPU count (NVML channels), plus the server
            gpu_g = server_g = 0.0
            gpus_seen = []
            for step in STEPS:
                hours = energy_of(energy[step], "job")["seconds"] / 3600
                sidecar = _read_json(results / "energy" / step / where / "sidecar.json")
                gpus = gpu_count(energy[step], sidecar)
                gpus_seen.append(gpus)
                g_gpu, g_server = embodied_g(0.0 if math.isnan(hours) else hours, gpus, f["gpu_kg_per_hour"],
                                             f["server_kg_per_hour"])
                gpu_g, server_g = gpu_g + g_gpu, server_g + g_server
            row |= {"train_co2e_g": train_g, "inference_co2e_g": infer_g,
                    "train_gpus": gpus_seen[0] if gpus_seen[0] is not None else math.nan,
                    "embodied_gpu_co2e_g": gpu_g, "embodied_server_co2e_g": server_g,
                    "embodied_co2e_g": gpu_g + server_g,
                    # the intensity of the training's own hours; none without a measured training span
                    "pue": pue.value, "intensity_g_per_kwh": math.nan if train["start_ns"] is None
                    else intensity.mean_over(train["start_ns"], train["end_ns"])}
            rows.append(row)
    return rows


def phase_rows(results: Path, config: dict) -> list[dict]:
    """Energy per phase of every job: one row per (arch, seed, step, phase name), all spans summed.

    ``rest of job`` is what the job spent outside its marked phases (start-up, loading, writing);
    ``job`` is the whole job. Components are kept; ``rest_of_node_j`` is the node meter minus the
    measured components when the node has a meter.
    """
    results = Path(results)
    f = factors_from_config(config["carbon"])
    rows = []
    for spec in specs_from_grid(config["grid"]):
        for seed in config.get("seeds", [0]):
            for step in STEPS:
                frame = _read_energy(results / "energy" / step / spec.name / f"seed{seed}" / "energy.csv")
                names = [p for p in dict.fromkeys(frame["phase"]) if p not in ("job", "idle_baseline")]
                job = _phase_row(frame, "job", f)
                parts = [_phase_row(frame, name, f) for name in names]
                rest = {"phase": "rest of job"} | {
                    k: job[k] - sum(p[k] for p in parts) for k in ("seconds", "energy_j", "co2e_g")
                    + tuple(f"{c}_j" for c in COMPONENTS)} | {"basis": job["basis"], "coverage": job["coverage"],
                                                              "spans": math.nan}
                if parts and not math.isnan(rest["energy_j"]) and rest["energy_j"] < 0:
                    log.warning("%s/%s seed%s: marked phases overlap (they add up to more than the job)",
                                step, spec.name, seed)
                    rest["energy_j"] = math.nan
                for r in [*parts, rest, job] if parts else [job]:
                    rows.append({"arch": spec.name, "seed": seed, "step": step} | r)
    return rows


def _phase_row(frame: pd.DataFrame, name: str, f: dict) -> dict:
    e = energy_of(frame, name)
    comps = [e[f"{c}_j"] for c in ("gpu", "cpu", "dram")]
    known = [c for c in comps if not math.isnan(c)]
    rest_node = e["node_j"] - sum(known) if known and not math.isnan(e["node_j"]) else math.nan
    spans = frame[frame["phase"] == name].drop_duplicates(["attempt", "index", "t_start_wall_ns"]) if len(frame) \
        else frame
    return {"phase": name, "spans": len(spans), "seconds": e["seconds"], "energy_j": e["energy_j"],
            **{f"{c}_j": e[f"{c}_j"] for c in COMPONENTS}, "rest_of_node_j": rest_node,
            "basis": e["basis"], "coverage": e["coverage"],
            "co2e_g": _carbon_g(frame, name, f["pue"], f["intensity"])}


def _factor_row(item: str, d: dict | None, unit: str) -> dict | None:
    if not d:
        return None
    value = d.get("value", f"series {d.get('series')}" if d.get("series") else None)
    return {"item": item, "value": value, "unit": unit, "source": d.get("source", "")}


def provenance(config: dict, results: Path) -> pd.DataFrame:
    """Every factor and every sensor behind the numbers, with its source."""
    carbon = config["carbon"]
    embodied = carbon.get("embodied", {}) or {}
    rows = [_factor_row("PUE", carbon["pue"], "ratio"),
            _factor_row("grid intensity", carbon["intensity"], "gCO2e/kWh"),
            _factor_row("embodied per GPU-hour", embodied.get("gpu_kg_per_hour"), "kgCO2e/h"),
            _factor_row("embodied per server-hour", embodied.get("server_kg_per_hour"), "kgCO2e/h")]
    rows = [r for r in rows if r]
    est = config.get("energy", {}).get("estimate", {})
    if est:
        rows.append({"item": "estimate: W per busy core", "value": est.get("watts_per_core"), "unit": "W",
                     "source": est.get("source", "")})
        rows.append({"item": "estimate: W per GiB resident", "value": est.get("watts_per_gib"), "unit": "W/GiB",
                     "source": est.get("source", "")})
    seen = set()
    for meta in sorted(Path(results, "energy").glob("*/*/seed*/sidecar.json")):
        for s in json.loads(meta.read_text()).get("sensors", []):
            key = (s["name"], s["available"], s.get("reason", ""))
            if key not in seen:
                seen.add(key)
                rows.append({"item": f"sensor {s['name']}", "value": "used" if s["available"] else "not available",
                             "unit": "", "source": s.get("reason", "")})
    return pd.DataFrame(rows)


def node_sharing(markers: Path) -> str:
    """Whether every attempt of a job had its node alone, from the job context in its begin markers."""
    contexts = [rec.get("job") or {} for rec in read_markers(markers) if rec.get("event") == "begin"]
    if not contexts:
        return "unknown"
    if not all(c.get("slurm_job_id") for c in contexts):
        return "shared node: not under SLURM, other processes may share it"
    if all(c.get("exclusive") is True for c in contexts):
        return "exclusive node"
    if any(c.get("exclusive") is False for c in contexts):
        return "shared node: node-level figures include other jobs"
    return "SLURM job, exclusivity unknown"


def job_provenance(results: Path, config: dict) -> pd.DataFrame:
    """One row per measured job: its sensors and channels, methods, coverage, basis, GPUs, node sharing."""
    results = Path(results)
    rows = []
    for spec in specs_from_grid(config["grid"]):
        for seed in config.get("seeds", [0]):
            for step in STEPS:
                folder = results / "energy" / step / spec.name / f"seed{seed}"
                frame = _read_energy(folder / "energy.csv")
                sidecar = _read_json(folder / "sidecar.json")
                job = frame[frame["phase"] == "job"] if len(frame) else frame
                env = sidecar.get("node", {}).get("environment", {}) or {}
                gpus = gpu_count(frame, sidecar)
                e = energy_of(frame, "job")
                short = frame[(frame["phase"] != "job") & ~frame["resolved"].astype(bool)] \
                    if len(frame) and "resolved" in frame else frame.iloc[0:0]
                rows.append({
                    "step": step, "arch": spec.name, "seed": seed,
                    "host": sidecar.get("node", {}).get("host", ""),
                    "slurm_job": env.get("SLURM_JOB_ID", ""),
                    "attempts": int(job["attempt"].nunique()) if len(job) else 0,
                    "sensors": " ".join(sorted({f"{r.sensor}/{r.channel}" for r in job.itertuples()})) or "none",
                    "methods": " ".join(sorted(set(job["method"]))) if len(job) else "",
                    "basis": e["basis"], "coverage": e["coverage"],
                    "unresolved_phases": len(short), "gpus": "unknown" if gpus is None else gpus,
                    # node-level sensors describe one job only on a node of its own (REFERENCE §7)
                    "node": node_sharing(folder / "markers.jsonl"),
                })
    return pd.DataFrame(rows)


NUMERIC_IN_BY_ARCH = ["params_m", "macs_g", "eer_cosine_*", "min_dcf_0.01_cosine_*", "eer_asnorm_*",
                      "train_energy_kwh", "train_hours", "inference_j_per_trial", "train_co2e_g",
                      "inference_co2e_g", "embodied_co2e_g"]


def by_arch_tables(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-architecture table: numbers (CSV: ``*_mean``, ``*_sd``) and text (``mean ± sd``)."""
    numbers = by_arch(frame)
    cols = [c for c in frame.columns
            if any(c == p or (p.endswith("*") and c.startswith(p[:-1])) for p in NUMERIC_IN_BY_ARCH)]
    shown = numbers[["arch", "seeds", "block", "stages", "widths"]].copy()
    for c in cols:
        shown[c] = [mean_sd_text(m, s) for m, s in zip(numbers[f"{c}_mean"], numbers[f"{c}_sd"], strict=True)]
    for c in ("train_energy_basis", "inference_energy_basis"):
        if c in numbers:
            shown[c] = numbers[c]
    return numbers, shown


def build_summary(results: Path, config: dict, out_dir: Path) -> pd.DataFrame:
    """Write the study's tables to ``out_dir`` (each as CSV, HTML and LaTeX):

    ``summary`` (per seed), ``summary_by_arch`` (mean ± sd), ``phases`` (energy per phase), ``carbon``,
    ``provenance`` (factors and sensors, with the per-job ``provenance_jobs``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(summary_rows(results, config))
    write_table(frame, out_dir / "summary", caption="svbench study summary: one row per architecture and seed")
    numbers, shown = by_arch_tables(frame)
    write_table(numbers, out_dir / "summary_by_arch", shown=shown,
                caption="svbench study summary: one row per architecture, mean ± sd over seeds")
    write_table(pd.DataFrame(phase_rows(results, config)), out_dir / "phases",
                caption="Energy (J) and operational CO2e (g) per phase of every job, all spans and attempts summed")
    carbon_cols = ["arch", "seed", "train_energy_kwh", "train_energy_basis", "pue", "intensity_g_per_kwh",
                   "train_co2e_g", "inference_co2e_g", "train_gpus", "embodied_gpu_co2e_g", "embodied_server_co2e_g",
                   "embodied_co2e_g"]
    write_table(frame[carbon_cols], out_dir / "carbon",
                caption="CO2e (g) per architecture and seed: operational (energy × PUE × grid intensity of each "
                        "job's own hours) and embodied (GPU-hours × real GPU count, server-hours), kept apart")
    jobs = job_provenance(results, config)
    write_table(jobs, out_dir / "provenance_jobs",
                caption="How every job was measured: sensors/channels, method, coverage, basis, GPUs, node")
    write_table(provenance(config, results), out_dir / "provenance", extra=[(jobs, "How every job was measured")],
                caption="Where every number comes from: carbon factors and sensors with their sources")
    if np.isnan(frame["train_energy_kwh"].to_numpy(dtype=float)).all():
        log.warning("no energy was measured or estimated for any training job")
    return frame
