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
from svbench.energy.carbon import Factor, Intensity, operational_g
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
            out[f"{c}_j"] = float(part["energy_j"].sum())
    used = rows[rows["component"] == "node"]
    if not len(used):
        used = rows[rows["component"].isin(["gpu", "cpu", "dram"])]
    if not len(used):
        return out
    estimated = used["estimated"].astype(bool)
    out["energy_j"] = float(used["energy_j"].sum())
    out["basis"] = "estimated" if estimated.all() else ("measured" if not estimated.any() else "measured+estimated")
    out["coverage"] = float(used["coverage"].min())
    spans = used.drop_duplicates(["attempt", "index", "t_start_wall_ns"])
    out["seconds"] = float(spans["seconds"].sum())
    out["start_ns"], out["end_ns"] = int(used["t_start_wall_ns"].min()), int(used["t_end_wall_ns"].max())
    return out


def _carbon_g(frame: pd.DataFrame, phase: str, pue: Factor, intensity: Intensity) -> float:
    """Operational gCO2e, each span weighted by the intensity of its own time."""
    e = energy_of(frame, phase)
    if math.isnan(e["energy_j"]):
        return math.nan
    rows = frame[(frame["phase"] == phase)]
    used = rows[rows["component"] == "node"]
    if not len(used):
        used = rows[rows["component"].isin(["gpu", "cpu", "dram"])]
    return float(sum(operational_g(r.energy_j, int(r.t_start_wall_ns), int(r.t_end_wall_ns), pue, intensity)
                     for r in used.itertuples()))


def _read_energy(path: Path) -> pd.DataFrame:
    if not path.exists():
        log.warning("%s missing: energy left empty", path)
        return pd.DataFrame(columns=["phase", "component", "energy_j", "estimated"])
    return pd.read_csv(path)


def summary_rows(results: Path, config: dict) -> list[dict]:
    """One dict per (architecture, seed) of the config's grid."""
    results = Path(results)
    specs = specs_from_grid(config["grid"])
    carbon = config["carbon"]
    pue = Factor.from_config(carbon["pue"], "carbon.pue", "")
    intensity = Intensity.from_config(carbon["intensity"])
    embodied = carbon.get("embodied", {})
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
            hours = sum(energy_of(energy[s], "job")["seconds"] for s in STEPS) / 3600
            gpus = int(info.get("gpus", 0) or 0)
            row |= {"train_co2e_g": train_g, "inference_co2e_g": infer_g,
                    "embodied_co2e_g": 1e3 * hours * (gpus * float(embodied.get("gpu_kg_per_hour", {}).get("value", 0))
                                                      + float(embodied.get("server_kg_per_hour", {}).get("value", 0))),
                    "pue": pue.value, "intensity_g_per_kwh": intensity.mean_over(train["start_ns"] or 0,
                                                                                 train["end_ns"] or 0)}
            rows.append(row)
    return rows


def provenance(config: dict, results: Path) -> pd.DataFrame:
    """Every factor and every sensor behind the numbers, with its source."""
    carbon = config["carbon"]
    rows = [{"item": "PUE", "value": carbon["pue"]["value"], "unit": "", "source": carbon["pue"]["source"]}]
    inten = carbon["intensity"]
    rows.append({"item": "grid intensity", "value": inten.get("value", f"series {inten.get('series')}"),
                 "unit": "gCO2e/kWh", "source": inten["source"]})
    embodied = (("gpu_kg_per_hour", "embodied per GPU-hour"), ("server_kg_per_hour", "embodied per server-hour"))
    for key, label in embodied:
        f = carbon.get("embodied", {}).get(key)
        if f:
            rows.append({"item": label, "value": f["value"], "unit": "kgCO2e/h", "source": f["source"]})
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


def build_summary(results: Path, config: dict, out_dir: Path) -> pd.DataFrame:
    """Write ``summary.csv/.html/.tex`` and ``provenance.csv/.html`` to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(summary_rows(results, config))
    write_table(frame, out_dir / "summary", caption="svbench study summary: one row per architecture and seed")
    write_table(provenance(config, results), out_dir / "provenance",
                caption="Where every number comes from: sensors and carbon factors with their sources")
    if np.isnan(frame["train_energy_kwh"].to_numpy(dtype=float)).all():
        log.warning("no energy was measured or estimated for any training job")
    return frame
