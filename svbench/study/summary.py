"""The study summary: one row per model and seed, joined from every step's own files. A model is a grid
architecture as trained, or (``large_margin.enabled``) that architecture after large-margin fine-tuning
(``<arch>+lm``): its own row, whose training energy is the backbone's training plus the fine-tuning.

Energy of a job: the node meter when it covers the components, node + GPU when it leaves the GPUs out,
else the sum of the measured components (GPU + CPU package + DRAM): see
:func:`svbench.energy.join.closure`; ``*_total_from`` says which. A job with no sensor at all has an empty
energy, never zero. ``*_energy_basis`` says whether the figure is measured, estimated (the CPU-time
model), both, or ``partial`` (a GPU job whose GPUs no sensor read).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
import pandas as pd

from svbench.corpus.manifest import read_manifest, read_trials
from svbench.energy import (
    REST_OF_JOB,
    SPAN,
    Factor,
    Intensity,
    embodied_g,
    energy_basis,
    factors_from_config,
    gpu_count,
    job_nodes,
    node_rows,
    partial_nodes,
    read_energy,
    rows_g,
    total,
    total_rows,
)
from svbench.fileio import read_json_object
from svbench.instrument.markers import BASELINE, node_sharing
from svbench.instrument.nodes import MARKERS, SIDECAR, node_dirs, node_name
from svbench.layout import (
    CARBON,
    CLOSURE,
    DIFFERENCES,
    ENERGY,
    FINETUNE,
    PARETO,
    PHASES,
    PROVENANCE,
    PROVENANCE_JOBS,
    STEPS,
    SUMMARY,
    SUMMARY_BY_ARCH,
    Job,
    Layout,
    Model,
    models_of,
)
from svbench.models import MACS_FRAMES, ArchSpec
from svbench.study import tradeoff
from svbench.study.analysis import by_arch, mean_sd_text
from svbench.study.grid import specs_from_grid
from svbench.study.tables import write_table
from svbench.typed_config import schema_default
from svbench.uncertainty import study_draws
from svbench.uncertainty.score_intervals import UncertaintySettings

log = logging.getLogger("svbench.study")

COMPONENTS = ("gpu", "cpu", "dram", "node")  # the node meter beside the parts it may cover


def _of_phase(frame: pd.DataFrame, phase: str, trials: str | None = None) -> pd.DataFrame:
    """The rows of every span named ``phase`` (all attempts); with ``trials``, only the spans of that list."""
    if not len(frame):
        return frame
    rows = frame[frame["phase"] == phase]
    if trials is not None:
        rows = rows[[_detail_of(d).get("trials") == trials for d in rows["detail"]]]
    return rows


def _detail_of(text: object) -> dict:
    return json.loads(text) if isinstance(text, str) and text else {}


def energy_of(frame: pd.DataFrame, phase: str, gpus: int | None = 0, trials: str | None = None) -> dict:
    """Total energy of all spans named ``phase`` (all attempts), with basis, coverage, time span, the
    components, the node's rest, and the idle/dynamic split.

    The total of each span follows :func:`svbench.energy.join.closure` (``total_from``: node, node+gpu or
    components). ``gpus`` is the job's GPU count (:func:`gpu_count`); None means the job had GPUs that no
    sensor read, so a total without a node meter lacks them: basis ``partial``, never ``measured``.
    """
    rows = node_rows(_of_phase(frame, phase, trials))
    out = {"energy_j": math.nan, "basis": "not measured", "coverage": math.nan, "seconds": math.nan,
           "start_ns": None, "end_ns": None, "rest_of_node_j": math.nan, "idle_j": math.nan, "dynamic_j": math.nan,
           "total_from": "none", "closure_note": "", "by_sensor": {}, "gap_j": 0.0}
    out |= {f"{c}_j": math.nan for c in ("node", *COMPONENTS)}
    if rows is None or len(rows) == 0:
        return out
    for c in ("node", *COMPONENTS, "rest_of_node"):
        part = rows[rows["component"] == c]
        if len(part):
            out[f"{c}_j"] = float(part["energy_j"].sum(min_count=1))
    used, out["total_from"], out["closure_note"] = total(rows)
    if not len(used):
        return out | {"total_from": "none", "closure_note": ""}
    out["energy_j"] = float(used["energy_j"].sum(min_count=1))
    if "sensor" in used:  # every energy.csv has it; a hand-made table may not, and gets no interval
        out["by_sensor"] = {str(k): float(v) for k, v in used.groupby("sensor")["energy_j"].sum().items()}
    covered = used[used["coverage"] > 0]  # the uncovered share of a row at the mean power of its covered part
    out["gap_j"] = float((covered["energy_j"] * (1 - covered["coverage"]) / covered["coverage"]).sum())
    out["basis"] = energy_basis(used)
    if gpus is None and not (used["component"] == "gpu").any() and out["total_from"] != "node":
        out["basis"] = "partial"  # the GPUs ran unmeasured: the figure leaves them out
    lacking = partial_nodes(frame, phase)
    if lacking:  # a node of the job without energy: the sum of the others, never that node as zero
        out["basis"] = "partial"
        out["closure_note"] = "; ".join(n for n in (out["closure_note"], f"partial: {lacking}") if n)
    out["coverage"] = float(used["coverage"].min())
    for c in ("idle_j", "dynamic_j"):
        if c in used:
            out[c] = float(used[c].sum(min_count=1)) if used[c].notna().all() else math.nan
    spans = used.drop_duplicates([c for c in SPAN if c in used.columns])
    # wall time: the nodes of a job ran side by side, so the longest node's spans, not their sum
    out["seconds"] = float(spans.groupby("node")["seconds"].sum().max() if "node" in spans else spans["seconds"].sum())
    out["start_ns"], out["end_ns"] = int(used["t_start_wall_ns"].min()), int(used["t_end_wall_ns"].max())
    return out


def _carbon_g(frame: pd.DataFrame, phase: str, pue: Factor, intensity: Intensity, trials: str | None = None) -> float:
    """Operational gCO2e of every span named ``phase`` (:func:`svbench.energy.carbon.rows_g` of its total)."""
    return rows_g(total_rows(_of_phase(frame, phase, trials)), pue, intensity)


def _read_energy(path: Path) -> pd.DataFrame:
    if not path.exists():
        log.warning("%s missing: energy left empty", path)
        return pd.DataFrame(columns=["phase", "component", "energy_j", "estimated"])
    return read_energy(path)


def _edge_used(frame: pd.DataFrame) -> bool:
    """Whether the join weighted some of these rows with the series' edge value (its notes say so)."""
    return "notes" in frame and frame["notes"].astype(str).str.contains("edge value used").any()


def _read_json(path: Path, what: str = "sidecar metadata") -> dict:
    """An optional JSON file: {} when absent, a UserError naming it when damaged."""
    return read_json_object(path, what) if path.exists() else {}


@dataclass(frozen=True)
class MeasuredJob:
    """What the study reads of one measured job: its joined energy, each node's sidecar metadata and markers
    (one of each on one node), and its GPU count over all its nodes."""

    job: Job
    energy: pd.DataFrame
    sidecars: list[dict]
    gpus: int | None
    markers: list[Path]

    @property
    def sidecar(self) -> dict:
        """The first node's sidecar metadata (the job's host and SLURM environment)."""
        return self.sidecars[0] if self.sidecars else {}

    @property
    def nodes(self) -> int:
        return max(len(self.markers), 1)


def read_job_folder(folder: Path) -> tuple[pd.DataFrame, list[dict], int | None, list[Path]]:
    """A measured job's energy folder as the study reads it: its ``energy.csv``, each node's sidecar metadata, its
    GPUs over all its nodes (:func:`gpus_over_nodes`) and each node's markers file."""
    frame = _read_energy(Path(folder) / ENERGY)
    folders = [Path(d) for d in node_dirs(str(folder), job_nodes(frame))]
    sidecars = [_read_json(d / SIDECAR) for d in folders]
    return frame, sidecars, gpus_over_nodes(frame, sidecars), [d / MARKERS for d in folders]


def _measured(layout: Layout, job: Job) -> MeasuredJob:
    return MeasuredJob(job, *read_job_folder(Path(job.energy_dir)))


def gpus_over_nodes(frame: pd.DataFrame, sidecars: list[dict]) -> int | None:
    """The GPUs of every node of a job (:func:`svbench.energy.carbon.gpu_count` per node, summed); unknown when
    any node's count is."""
    if len(sidecars) <= 1:
        return gpu_count(node_rows(frame), sidecars[0] if sidecars else {})
    counts = [gpu_count(frame[frame["node"] == node_name(rank)] if "node" in frame else frame.iloc[0:0], sidecar)
              for rank, sidecar in enumerate(sidecars)]
    return None if None in counts else sum(counts)


def large_margin_enabled(config: dict) -> bool:
    """Whether the study fine-tunes every architecture with a large margin (config ``large_margin.enabled``)."""
    return bool((config.get("large_margin") or {}).get("enabled", False))


def study_jobs(layout: Layout, config: dict) -> Iterator[tuple[ArchSpec, Model, int, dict[str, MeasuredJob]]]:
    """Every (architecture, model, seed) of the config's grid with the model's own measured steps: the study's
    one loop. The model is the architecture trained, or fine-tuned."""
    specs = {spec.name: spec for spec in specs_from_grid(config.get("grid") or [])}
    jobs = layout.jobs(specs, config.get("seeds", schema_default("seeds")), large_margin_enabled(config))
    for (model, seed), steps in groupby(jobs, key=lambda job: (job.model, job.seed)):
        yield specs[model.backbone], model, seed, {job.step: _measured(layout, job) for job in steps}


StudyJobs = list[tuple[ArchSpec, Model, int, dict[str, MeasuredJob]]]


def load_study(layout: Layout, config: dict) -> StudyJobs:
    """:func:`study_jobs` read once: every job's energy.csv, sidecars and markers, for the tables that are views
    of them (the summary, the phases, the closure, the provenance)."""
    return list(study_jobs(layout, config))


def training_job(base: MeasuredJob, tuned: MeasuredJob) -> MeasuredJob:
    """What it cost to train a fine-tuned model: its backbone's training job and its fine-tuning together (their
    spans summed like the attempts of one job). Without the energy of either, the sum is unknown: empty, never
    the other part alone."""
    gpus = None if None in (base.gpus, tuned.gpus) else max(base.gpus, tuned.gpus)
    both = len(base.energy) and len(tuned.energy)
    energy = pd.concat([base.energy, tuned.energy], ignore_index=True) if both else tuned.energy.iloc[0:0]
    return MeasuredJob(tuned.job, energy, tuned.sidecars, gpus, tuned.markers)


def _list_audio_seconds(layout: Layout, names: list[str], seconds: dict[str, float]) -> dict[str, float]:
    """Audio seconds of the test utterances each trial list uses (enrolment and test sides)."""
    out = {}
    for name in names:
        path = Path(layout.trials(name))
        if not path.exists():
            out[name] = math.nan
            continue
        used = {u for t in read_trials(path) for u in (t.enroll, t.test)}
        out[name] = float(sum(seconds.get(u, 0.0) for u in used))
    return out


def inference_rows(energy: dict[str, pd.DataFrame], metrics: dict, test_seconds: dict[str, float],
                   list_seconds: dict[str, float], pue: Factor, intensity: Intensity) -> dict:
    """The inference figures of one model on one basis, per trial list L (see the README):

    E_L = E(embed_test) × audio seconds of the test utterances L uses / audio seconds of all test utterances
          + E(score phases of L);
    J per trial = E_L / trials of L; kJ per audio hour = E_L / audio hours L uses; CO2e likewise pro rata.
    The all-lists figures sum the lists. Training-set embeddings (cohort, mean) are reported apart, once.
    """
    embed = energy_of(energy["embed"], "embed_test")
    embed_g = _carbon_g(energy["embed"], "embed_test", pue, intensity)
    total_audio = sum(test_seconds.values())
    row: dict = {"embed_test_energy_j": embed["energy_j"],
                 "embed_train_energy_j": energy_of(energy["embed"], "embed_train")["energy_j"],
                 "score_energy_j": energy_of(energy["score"], "score")["energy_j"]}
    sums = {"j": 0.0, "g": 0.0, "trials": 0, "hours": 0.0}
    bases = set()
    lists = {name: m for name, m in metrics.items() if isinstance(m, dict)}
    scores = _of_phase(energy["score"], "score")
    by_list = len(scores) and any("trials" in _detail_of(d) for d in scores.get("detail", []))
    all_trials = sum(m["trials"] for m in lists.values())
    for name, m in lists.items():
        share = list_seconds.get(name, math.nan) / total_audio if total_audio else math.nan
        if by_list:  # each list's own scoring spans
            score = energy_of(energy["score"], "score", trials=name)
            score_g = _carbon_g(energy["score"], "score", pue, intensity, trials=name)
        else:  # markers that did not name the list (older svbench): scoring split by trial count
            score = energy_of(energy["score"], "score")
            part = m["trials"] / all_trials if all_trials else math.nan
            score = score | {"energy_j": score["energy_j"] * part}
            score_g = _carbon_g(energy["score"], "score", pue, intensity) * part
        joules = embed["energy_j"] * share + score["energy_j"]
        grams = embed_g * share + score_g
        hours = list_seconds.get(name, math.nan) / 3600
        row |= {f"inference_j_per_trial_{name}": joules / m["trials"] if m["trials"] else math.nan,
                f"inference_kj_per_audio_hour_{name}": joules / 1e3 / hours if hours else math.nan,
                f"inference_co2e_g_{name}": grams}
        sums = {"j": sums["j"] + joules, "g": sums["g"] + grams, "trials": sums["trials"] + m["trials"],
                "hours": sums["hours"] + hours}
        bases |= {embed["basis"], score["basis"]}
    row |= {"inference_j_per_trial": sums["j"] / sums["trials"] if sums["trials"] else math.nan,
            "inference_kj_per_audio_hour": sums["j"] / 1e3 / sums["hours"] if sums["hours"] else math.nan,
            "inference_co2e_g": sums["g"] if sums["trials"] else math.nan,
            "inference_energy_basis": "/".join(sorted(bases)) if bases else "not measured"}
    return row


def _model_row(spec: ArchSpec, model: Model, seed: int, info: dict, metrics: dict) -> dict:
    """The model, its architecture and size (``info``: its backbone's ``spec.json``: epochs are the training's),
    and its accuracy on every trial list and back-end."""
    row: dict = {"arch": model.name, "seed": seed, "backbone": model.backbone, "stage": model.stage,
                 "block": spec.block, "stages": "-".join(map(str, spec.stages)),
                 "widths": "-".join(map(str, spec.stage_widths)),
                 "params_m": info["params"] / 1e6, "macs_g": info["macs"] / 1e9,
                 "macs_frames": info.get("macs_frames", MACS_FRAMES),
                 "epochs": info.get("epochs"), "samples_per_epoch": info.get("samples_per_epoch")}
    for name, m in metrics.items():
        if not isinstance(m, dict):
            continue
        for backend, values in m.items():
            if isinstance(values, dict):
                row[f"eer_{backend}_{name}"] = 100 * values["eer"]
                row[f"min_dcf_0.01_{backend}_{name}"] = values["min_dcf_0.01"]
                row[f"min_dcf_0.05_{backend}_{name}"] = values["min_dcf_0.05"]
    return row


def _train_row(train: dict) -> dict:
    row = {"train_energy_kwh": train["energy_j"] / 3.6e6, "train_hours": train["seconds"] / 3600,
           "train_energy_basis": train["basis"], "train_coverage": train["coverage"],
           "train_total_from": train["total_from"],
           "train_idle_kwh": train["idle_j"] / 3.6e6, "train_dynamic_kwh": train["dynamic_j"] / 3.6e6}
    return row | {f"train_{c}_kwh": train[f"{c}_j"] / 3.6e6 for c in (*COMPONENTS, "rest_of_node")}


def _carbon_row(jobs: dict[str, MeasuredJob], train: dict, factors: dict) -> dict:
    """Operational CO2e of the training, embodied CO2e of every step, and the factors used; ``jobs["train"]``
    is what it cost to train the model (:func:`training_job`)."""
    pue, intensity = factors["pue"], factors["intensity"]
    train_g = _carbon_g(jobs["train"].energy, "job", pue, intensity)
    # embodied: each step's hours on its own real GPU count (NVML channels), plus the server;
    # a step without a measured span has unknown hours: its embodied carbon stays empty
    gpu_g = server_g = 0.0
    for step in STEPS:
        hours = energy_of(jobs[step].energy, "job")["seconds"] / 3600
        g_gpu, g_server = embodied_g(hours, jobs[step].gpus, factors["gpu_kg_per_hour"],
                                     factors["server_kg_per_hour"], servers=jobs[step].nodes)
        gpu_g, server_g = gpu_g + g_gpu, server_g + g_server
    gpus = jobs["train"].gpus
    return {"train_co2e_g": train_g, "train_closure": train["closure_note"],
            "train_gpus": gpus if gpus is not None else math.nan, "train_nodes": jobs["train"].nodes,
            "embodied_gpu_co2e_g": gpu_g, "embodied_server_co2e_g": server_g,
            "embodied_co2e_g": gpu_g + server_g,
            # the intensity the training's energy met (weighted by it); none without measured energy
            "pue": pue.value, "intensity_g_per_kwh": train_g / (train["energy_j"] / 3.6e6 * pue.value)
            if train["energy_j"] > 0 else math.nan,
            "intensity_source": intensity.label if not _edge_used(jobs["train"].energy)
            else f"{intensity.source} (edge value used outside the series)"}


def _finetune_row(tuned: dict | None, info: dict) -> dict:
    """A fine-tuned model's fine-tuning on its own (``tuned``: its :func:`energy_of`, None for a trained model):
    its energy (part of ``train_energy_kwh``) and epochs."""
    if tuned is None:
        return {"finetune_energy_kwh": math.nan, "finetune_epochs": math.nan}
    return {"finetune_energy_kwh": tuned["energy_j"] / 3.6e6, "finetune_epochs": info.get("epochs")}


def summary_rows(results: Path | Layout, config: dict) -> list[dict]:
    """One dict per (model, seed) of the config's grid."""
    return summary_with_draws(results, config)[0]


def summary_with_draws(results: Path | Layout, config: dict,
                       loaded: StudyJobs | None = None) -> tuple[list[dict], study_draws.StudyDraws]:
    """The summary's rows, and the Monte Carlo draws of their energy and carbon figures (their intervals);
    ``loaded``: the study as :func:`load_study` read it (else read here)."""
    layout = Layout.of(results)
    factors = factors_from_config(config.get("carbon"))
    test_seconds = {u.utt: u.seconds for u in read_manifest(Path(layout.manifest("test")))}
    list_seconds: dict[str, float] | None = None
    settings = UncertaintySettings.from_config(config.get("uncertainty", {}))
    draws = study_draws.StudyDraws(settings.resamples, settings.seed,
                                   study_draws.sensor_tolerances(config.get("energy", {})), factors)
    rows = []
    trained: dict[tuple[str, int], tuple[MeasuredJob, dict]] = {}  # each backbone's training, for its +lm model
    for spec, model, seed, jobs in loaded if loaded is not None else study_jobs(layout, config):
        info = read_json_object(Path(layout.spec(model.name, seed)), "model's spec.json")
        tuned = None
        if FINETUNE in jobs:  # Layout.jobs lists the backbone first
            base, base_info = trained[(spec.name, seed)]
            jobs = jobs | {"train": training_job(base, jobs[FINETUNE])}
            tuned = energy_of(jobs[FINETUNE].energy, "job", jobs[FINETUNE].gpus)
        else:
            base_info = info
            trained[(model.name, seed)] = (jobs["train"], info)
        metrics = read_json_object(Path(layout.metrics(model.name, seed)), "metrics")
        row = _model_row(spec, model, seed, base_info, metrics) | study_draws.job_columns(
            Path(layout.intervals(model.name, seed)))
        train = energy_of(jobs["train"].energy, "job", jobs["train"].gpus)
        row |= _train_row(train) | _finetune_row(tuned, info)
        if list_seconds is None:  # the lists are the same for every model
            names = [n for n, m in metrics.items() if isinstance(m, dict)]
            list_seconds = _list_audio_seconds(layout, names, test_seconds)
        energy = {step: measured.energy for step, measured in jobs.items()}
        row |= inference_rows(energy, metrics, test_seconds, list_seconds, factors["pue"], factors["intensity"])
        row |= _carbon_row(jobs, train, factors)
        total_audio = sum(test_seconds.values())
        parts = {"train": train, "embed_test": energy_of(energy["embed"], "embed_test"),
                 "score": energy_of(energy["score"], "score")}
        if tuned is not None:  # its draws add to the backbone's (the two rows' training energies are paired)
            parts["finetune"] = tuned
        share = sum(list_seconds.values()) / total_audio if total_audio else math.nan
        rows.append(row | draws.add_job(model.name, seed, row, parts, share, settings.level))
    return rows, draws


def phase_rows(results: Path | Layout, config: dict, loaded: StudyJobs | None = None) -> list[dict]:
    """Energy per phase of every job: one row per (arch, seed, step, phase name), all spans summed.

    ``idle_baseline`` is the monitor's idle sampling before the job; ``rest_of_job`` is what the job
    spent outside its marked phases (start-up, loading, writing), from the union of their spans, never
    negative; ``job`` is the whole job. Components are kept; ``rest_of_node_j`` is the node meter minus
    the components it covers, ``idle_j``/``dynamic_j`` the split by the idle baseline.
    """
    factors = factors_from_config(config.get("carbon"))
    rows = []
    for _, model, seed, jobs in loaded if loaded is not None else study_jobs(Layout.of(results), config):
        for step, measured in jobs.items():
            frame = measured.energy
            names = [p for p in dict.fromkeys(frame["phase"]) if p not in ("job", REST_OF_JOB, BASELINE)]
            order = [BASELINE] * (BASELINE in set(frame["phase"])) + names + [REST_OF_JOB] * bool(names) + ["job"]
            for name in order:
                rows.append({"arch": model.name, "seed": seed, "step": step}
                            | _phase_row(frame, name, factors, measured.gpus))
    return rows


def closure_rows(results: Path | Layout, config: dict, loaded: StudyJobs | None = None) -> list[dict]:
    """The energy closure of every job, one row per node: each node's meter against that node's GPU + CPU +
    DRAM (a node meter covers its own node only), and how that node's total was made."""
    rows = []
    for _, model, seed, jobs in loaded if loaded is not None else study_jobs(Layout.of(results), config):
        for step, measured in jobs.items():
            frame = node_rows(measured.energy)
            for node in dict.fromkeys(frame["node"]) if "node" in frame else ["node0"]:
                e = energy_of(frame[frame["node"] == node] if "node" in frame else frame, "job", measured.gpus)
                rows.append({"arch": model.name, "seed": seed, "step": step, "node": node,
                             **{f"{c}_j": e[f"{c}_j"] for c in ("node", *COMPONENTS, "rest_of_node")},
                             "total_from": e["total_from"], "energy_j": e["energy_j"], "closure": e["closure_note"]})
    return rows


def _phase_row(frame: pd.DataFrame, name: str, f: dict, gpus: int | None) -> dict:
    e = energy_of(frame, name, gpus)
    spans = _of_phase(frame, name)
    spans = spans.drop_duplicates([c for c in SPAN if c in spans.columns]) if len(spans) else spans
    return {"phase": name, "spans": len(spans), "seconds": e["seconds"], "energy_j": e["energy_j"],
            **{f"{c}_j": e[f"{c}_j"] for c in COMPONENTS}, "rest_of_node_j": e["rest_of_node_j"],
            "idle_j": e["idle_j"], "dynamic_j": e["dynamic_j"], "total_from": e["total_from"],
            "basis": e["basis"], "coverage": e["coverage"], "closure": e["closure_note"],
            "co2e_g": _carbon_g(frame, name, f["pue"], f["intensity"])}


def _factor_row(item: str, d: dict | None, unit: str) -> dict | None:
    if not d:
        return None
    value = d.get("value", f"series {d.get('series')}" if d.get("series") else None)
    # a factor's range (low, high) is propagated to the CO2e intervals; empty: taken as exact
    return {"item": item, "value": value, "low": d.get("low"), "high": d.get("high"), "unit": unit,
            "source": d.get("source", "")}


def provenance(config: dict, results: Path | Layout) -> pd.DataFrame:
    """Every factor and every sensor behind the numbers, with its source."""
    carbon = config.get("carbon")
    factors_from_config(carbon)  # the same checks, and errors, as the tables' figures
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
    layout = Layout.of(results)
    rows += cohort_rows(config, layout)
    seen = set()
    for meta in sorted(m for pattern in layout.sidecars() for m in Path(layout.root).glob(pattern)):
        for s in read_json_object(meta, "sidecar metadata").get("sensors", []):
            key = (s["name"], s["available"], s.get("reason", ""))
            if key not in seen:
                seen.add(key)
                rows.append({"item": f"sensor {s['name']}", "value": "used" if s["available"] else "not available",
                             "unit": "", "source": s.get("reason", "")})
    return pd.DataFrame(rows)


def cohort_rows(config: dict, layout: Layout) -> list[dict]:
    """The AS-norm cohorts the scores used (kind, speakers, utterances, top-N), one row per distinct cohort."""
    found: dict[tuple, list[str]] = {}
    for model in models_of([s.name for s in specs_from_grid(config.get("grid") or [])], large_margin_enabled(config)):
        for seed in config["seeds"]:
            path = Path(layout.metrics(model.name, seed))
            if path.exists():
                m = read_json_object(path, "metrics")
                if "cohort_size" in m:
                    key = (m.get("cohort_kind", "crops"), m["cohort_size"], m.get("cohort_utts"), m.get("top_n"))
                    found.setdefault(key, []).append(f"{model.name}/seed{seed}")
    rows = []
    for (kind, size, utts, top_n), jobs in found.items():
        what = ("speaker-mean embeddings of whole training utterances (WeSpeaker's local/score_norm.sh)"
                if kind == "speaker_mean" else "speaker means of one random crop per sampled training utterance")
        from_utts = f" from {utts} utterances" if utts is not None else ""
        rows.append({"item": "AS-norm cohort", "value": f"{kind}: {size} speakers{from_utts}, top {top_n}",
                     "unit": "", "source": f"{what}; {len(jobs)} job(s)"})
    return rows


def _job_provenance_row(measured: MeasuredJob) -> dict:
    frame, sidecar, gpus = measured.energy, measured.sidecar, measured.gpus
    job = node_rows(frame[frame["phase"] == "job"]) if len(frame) else frame
    env = sidecar.get("node", {}).get("environment", {}) or {}
    e = energy_of(frame, "job", gpus)
    short = frame[(frame["phase"] != "job") & ~frame["resolved"].astype(bool)] \
        if len(frame) and "resolved" in frame else frame.iloc[0:0]
    return {
        "step": measured.job.step, "arch": measured.job.model.name, "seed": measured.job.seed,
        "host": " ".join(dict.fromkeys(s.get("node", {}).get("host", "") for s in measured.sidecars)),
        "slurm_job": env.get("SLURM_JOB_ID", ""),
        "nodes": measured.nodes,
        # per node: a requeued job's attempts are counted on each node, and a node may have missed one
        "attempts": int(job.groupby("node")["attempt"].nunique().max()) if len(job) else 0,
        "sensors": " ".join(sorted({f"{r.sensor}/{r.channel}" for r in job.itertuples()})) or "none",
        "methods": " ".join(sorted(set(job["method"]))) if len(job) else "",
        "basis": e["basis"], "total_from": e["total_from"], "closure": e["closure_note"],
        "coverage": e["coverage"], "unresolved_phases": len(short),
        "gpus": "unknown" if gpus is None else gpus,
        # node-level sensors describe one job only on a node of its own
        "node": node_sharing(*measured.markers),
    }


def job_provenance(results: Path | Layout, config: dict, loaded: StudyJobs | None = None) -> pd.DataFrame:
    """One row per measured job: its sensors and channels, methods, coverage, basis, GPUs, node sharing."""
    study = loaded if loaded is not None else study_jobs(Layout.of(results), config)
    rows = [_job_provenance_row(measured) for _, _, _, jobs in study for measured in jobs.values()]
    return pd.DataFrame(rows)


NUMERIC_IN_BY_ARCH = ["params_m", "macs_g", "eer_cosine_*", "min_dcf_0.01_cosine_*", "eer_asnorm_*",
                      "train_energy_kwh", "train_hours", "inference_j_per_trial", "train_co2e_g",
                      "inference_co2e_g", "embodied_co2e_g"]


def by_arch_tables(frame: pd.DataFrame, layout: Layout | None = None, settings: dict | None = None,
                   draws: study_draws.StudyDraws | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-architecture table: numbers (CSV: ``*_mean``, ``*_sd``, and with a ``layout`` the intervals over
    seeds and speakers or sensor and factor draws, ``*_low``/``*_high``) and text (``mean ± sd [low, high]``)."""
    numbers = by_arch(frame[[c for c in frame.columns if not study_draws.is_bound(c)]])
    if layout is not None:
        chosen = UncertaintySettings.from_config(settings or {})
        bounds = study_draws.arch_columns(layout, frame, draws, chosen.seed, chosen.level)
        numbers = numbers.merge(bounds, on="arch", how="left", sort=False)
    cols = [c for c in frame.columns if not study_draws.is_bound(c)
            and any(c == p or (p.endswith("*") and c.startswith(p[:-1])) for p in NUMERIC_IN_BY_ARCH)]
    shown = numbers[["arch", "seeds", "block", "stages", "widths"]].copy()
    for c in cols:
        shown[c] = [mean_sd_text(m, s) for m, s in zip(numbers[f"{c}_mean"], numbers[f"{c}_sd"], strict=True)]
        if f"{c}_low" in numbers:
            shown[c] = [with_interval(text, low, high) for text, low, high
                        in zip(shown[c], numbers[f"{c}_low"], numbers[f"{c}_high"], strict=True)]
    for c in ("train_energy_basis", "inference_energy_basis"):
        if c in numbers:
            shown[c] = numbers[c]
    return numbers, shown


def with_interval(text: str, low: float, high: float) -> str:
    """A table cell with its interval, ``text [low, high]``; the text alone without one."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return text
    return f"{text} [{low:.3g}, {high:.3g}]"


def shown_with_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-seed summary for HTML and LaTeX: every figure with bounds as ``value [low, high]``, bounds
    folded in (the CSV keeps them as columns)."""
    shown = frame[[c for c in frame.columns if not study_draws.is_bound(c)]].copy()
    for c in shown.columns:
        if f"{c}_low" in frame and f"{c}_high" in frame:
            shown[c] = [with_interval(mean_sd_text(v, math.nan), low, high) for v, low, high
                        in zip(frame[c], frame[f"{c}_low"], frame[f"{c}_high"], strict=True)]
    return shown


def beside_their_figures(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns reordered so that ``<figure>_low`` and ``_high`` follow ``<figure>``."""
    order = []
    for c in frame.columns:
        if study_draws.is_bound(c) and c.rsplit("_", 1)[0] in frame:
            continue
        order.append(c)
        order += [c + b for b in study_draws.BOUNDS if c + b in frame]
    return frame[order]


def build_summary(results: Path | Layout, config: dict, out_dir: Path) -> pd.DataFrame:
    """Write the study's tables to ``out_dir`` (each as CSV, HTML and LaTeX):

    ``summary`` (per seed), ``summary_by_arch`` (mean ± sd), ``phases`` (energy per phase), ``carbon``,
    ``provenance`` (factors and sensors, with the per-job ``provenance_jobs``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = load_study(Layout.of(results), config)  # every job's files read once; the tables are views of it
    rows, draws = summary_with_draws(results, config, loaded)
    frame = beside_their_figures(pd.DataFrame(rows))
    write_table(frame, out_dir / SUMMARY, shown=shown_with_intervals(frame),
                caption="svbench study summary: one row per architecture and seed, each figure [its 95 % interval: "
                        "speaker bootstrap for accuracy, sensor tolerances, coverage gaps and carbon factor ranges "
                        "for energy and CO2e]")
    layout, settings = Layout.of(results), config.get("uncertainty")
    numbers, shown = by_arch_tables(frame, layout, settings, draws)
    write_table(numbers, out_dir / SUMMARY_BY_ARCH, shown=shown,
                caption="svbench study summary: one row per architecture, mean ± sd over seeds "
                        "[95 % interval over seeds and speakers (accuracy) or seeds and sensor/factor draws "
                        "(energy, CO2e)]")
    chosen = UncertaintySettings.from_config(settings or {})
    pareto, differences = tradeoff.tradeoff_tables(layout, frame, draws, chosen)
    write_table(pareto, out_dir / PARETO,
                caption="How often each architecture is Pareto-optimal and the knee (EER against training energy) "
                        "over resampled studies")
    write_table(differences, out_dir / DIFFERENCES,
                caption="Paired differences against the reference architecture and along the Pareto front, "
                        "with 95 % intervals")
    phases = pd.DataFrame(phase_rows(results, config, loaded))
    write_table(phases, out_dir / PHASES,
                caption="Energy (J) and operational CO2e (g) per phase of every job, all spans and attempts summed")
    closure_cols = ["arch", "seed", "step", "node", "node_j", "gpu_j", "cpu_j", "dram_j", "rest_of_node_j",
                    "total_from", "energy_j", "closure"]
    write_table(pd.DataFrame(closure_rows(results, config, loaded)).reindex(columns=closure_cols), out_dir / CLOSURE,
                caption="Energy closure per job and node (J): each node's meter against its GPU + CPU + DRAM, the "
                        "rest of the node, and how that node's total was made (a job's total is their sum)")
    carbon_cols = ["arch", "seed", "train_energy_kwh", "finetune_energy_kwh", "train_idle_kwh", "train_dynamic_kwh",
                   "train_energy_basis",
                   "train_total_from", "pue", "intensity_g_per_kwh", "intensity_source",
                   "train_co2e_g", "inference_co2e_g", "train_nodes", "train_gpus", "embodied_gpu_co2e_g",
                   "embodied_server_co2e_g", "embodied_co2e_g"]
    write_table(frame[carbon_cols], out_dir / CARBON,
                caption="CO2e (g) per model and seed: operational (energy × PUE × grid intensity of each "
                        "job's own hours) and embodied (GPU-hours × real GPU count, server-hours), kept apart; a "
                        "fine-tuned model's (+lm) training includes its backbone's: rows are not to be summed")
    jobs = job_provenance(results, config, loaded)
    write_table(jobs, out_dir / PROVENANCE_JOBS,
                caption="How every job was measured: sensors/channels, method, coverage, basis, GPUs, node")
    write_table(provenance(config, results), out_dir / PROVENANCE, extra=[(jobs, "How every job was measured")],
                caption="Where every number comes from: carbon factors and sensors with their sources")
    if np.isnan(frame["train_energy_kwh"].to_numpy(dtype=float)).all():
        log.warning("no energy was measured or estimated for any training job")
    return frame
