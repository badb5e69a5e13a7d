"""A synthetic study: a results tree as the workflow leaves it, with energy proportional to MACs."""

from __future__ import annotations

import json
from pathlib import Path

T0 = 1_700_000_000 * 10**9  # wall-clock ns
GRID = [{"name": "a", "block": "basic", "stages": [1, 1, 1, 1], "width": 4},
        {"name": "b", "block": "basic", "stages": [2, 2, 2, 2], "width": 4},
        {"name": "b_back", "block": "basic", "stages": [1, 1, 2, 4], "width": 4},
        {"name": "c", "block": "basic", "stages": [1, 1, 1, 1], "width": 8}]
EER = {"a": 0.12, "b": 0.10, "b_back": 0.105, "c": 0.095}
MACS = {"a": 1e8, "b": 2e8, "b_back": 2e8, "c": 4e8}


def write_job(folder: Path, watts: float, seconds: float, start_ns: int, phases: list[str],
              fields: dict | None = None) -> None:
    """trace.csv (a CPU energy counter and DRAM power every 0.5 s), markers.jsonl and energy.csv of one job."""
    from svbench.energy.join import join

    folder.mkdir(parents=True, exist_ok=True)
    lines = ["t_wall_ns,t_mono_ns,sensor,channel,quantity,value,unit,component,estimated"]
    for k in range(int(seconds / 0.5) + 1):
        t = k * 0.5
        wall, mono = start_ns + int(t * 1e9), int(1e12 + t * 1e9)
        lines.append(f"{wall},{mono},rapl,package-0,energy,{watts * t},J,cpu,0")
        lines.append(f"{wall},{mono},rapl,dram-0,power,{watts / 10},W,dram,0")
    (folder / "trace.csv").write_text("\n".join(lines) + "\n")
    marks = [{"event": "begin", "t_wall_ns": start_ns, "t_mono_ns": int(1e12)}]
    span = seconds / (len(phases) + 1)
    for i, name in enumerate(phases):
        a, b = (i + 0.5) * span, (i + 1.5) * span
        marks.append({"event": "start", "phase": name, "index": i, "pid": 1, "t_wall_ns": start_ns + int(a * 1e9),
                      "t_mono_ns": int(1e12 + a * 1e9), **(fields or {})})
        marks.append({"event": "stop", "phase": name, "index": i, "pid": 1, "ok": True,
                      "t_wall_ns": start_ns + int(b * 1e9), "t_mono_ns": int(1e12 + b * 1e9)})
    marks.append({"event": "end", "status": 0, "t_wall_ns": start_ns + int(seconds * 1e9),
                  "t_mono_ns": int(1e12 + seconds * 1e9)})
    (folder / "markers.jsonl").write_text("".join(json.dumps(m) + "\n" for m in marks))
    (folder / "sidecar.json").write_text(json.dumps({"node": {"host": "h", "cpu_model": "cpu", "logical_cpus": 4,
                                                              "memory_bytes": 2**34, "gpu_devices": 0,
                                                              "environment": {}},
                                                     "sensors": [{"name": "rapl", "available": True, "reason": ""}]}))
    join(folder / "trace.csv", folder / "markers.jsonl", folder / "energy.csv")


def _write(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


LM_SHARE = 0.1  # a fine-tuning's energy against its backbone's training


def models(config: dict) -> list[str]:
    """The model names of a fake study's config: the grid's, and their fine-tuned models' when enabled."""
    from svbench.layout import models_of

    return [model.name for model in models_of([spec["name"] for spec in config["grid"]],
                                              config.get("large_margin", {}).get("enabled", False))]


def _fine_tuned(layout, name: str, seed: int, train_joules: float, energy: bool) -> None:
    """The fine-tuned model of ``name``: one epoch, EER 0.01 lower, its fine-tuning LM_SHARE of the training."""
    from svbench.layout import LARGE_MARGIN, Model

    tuned = Model(name, LARGE_MARGIN).name
    _write(layout.spec(tuned, seed), json.dumps({"params": MACS[name] / 100, "macs": MACS[name], "macs_frames": 200,
                                                 "epochs": 1, "samples_per_epoch": 100}))
    eer = EER[name] - 0.01 + 0.002 * seed
    _write(layout.metrics(tuned, seed), json.dumps(
        {"syn": {"trials": 20, "cosine": {"eer": eer, "min_dcf_0.01": 5 * eer, "min_dcf_0.05": 3 * eer}}}))
    if not energy:
        return
    # at 10 W (+ DRAM's tenth), seconds enough for a few samples
    write_job(Path(layout.energy_dir("finetune", tuned, seed)), 10.0, LM_SHARE * train_joules / 10 / 1.1,
              T0 + seed * 10**12 + 5 * 10**11, ["epoch"])
    write_job(Path(layout.energy_dir("embed", tuned, seed)), 50.0, 2.0, T0 + 3 * 10**11, ["embed_test", "embed_train"])
    write_job(Path(layout.energy_dir("score", tuned, seed)), 50.0, 1.0, T0 + 4 * 10**11, ["score"],
              {"backend": "cosine", "trials": "syn"})


def fake_study(root: Path, grid: list[dict] = GRID, seeds: tuple[int, ...] = (0, 1), energy: bool = True,
               large_margin: bool = False) -> dict:
    """A results tree with training energy proportional to MACs (plus a constant), 20 trials per job; with
    ``large_margin`` every architecture's fine-tuned model too."""
    from svbench.layout import Layout

    layout = Layout(str(root / "results"))
    _write(layout.manifest("test"), "utt\tspeaker\tpath\tseconds\nu1\ts1\tu1.wav\t3.0\nu2\ts2\tu2.wav\t5.0\n")
    _write(layout.trials("syn"), "1 u1 u1\n")  # "syn" uses u1 alone: 3 of 8 s
    for spec in grid:
        name = spec["name"]
        for seed in seeds:
            if large_margin:
                _fine_tuned(layout, name, seed, 5e-9 * MACS[name] * 200 + 100 + 5 * seed, energy)
            _write(layout.spec(name, seed), json.dumps(
                {"params": MACS[name] / 100, "macs": MACS[name], "macs_frames": 200, "epochs": 2,
                 "samples_per_epoch": 100}))
            eer = EER[name] + 0.002 * seed
            _write(layout.metrics(name, seed), json.dumps(
                {"syn": {"trials": 20, "cosine": {"eer": eer, "min_dcf_0.01": 5 * eer, "min_dcf_0.05": 3 * eer}}}))
            if not energy:
                continue
            # 2 epochs x 100 samples x MACs at 5e-9 J per MAC-sample, plus 100 J: seconds at 100 W
            joules = 5e-9 * MACS[name] * 200 + 100 + 5 * seed
            write_job(Path(layout.energy_dir("train", name, seed)), 100.0, joules / 100 / 1.1, T0 + seed * 10**12,
                      ["epoch", "epoch"])
            write_job(Path(layout.energy_dir("embed", name, seed)), 50.0, 2.0, T0 + 10**11,
                      ["embed_test", "embed_train"])
            write_job(Path(layout.energy_dir("score", name, seed)), 50.0, 1.0, T0 + 2 * 10**11, ["score"],
                      {"backend": "cosine", "trials": "syn"})
    return {"grid": grid, "seeds": list(seeds), "energy": {}, "large_margin": {"enabled": large_margin},
            "carbon": {"pue": {"value": 1.2, "source": "site"}, "intensity": {"value": 100.0, "source": "grid"},
                       "embodied": {"gpu_kg_per_hour": {"value": 0.0034, "source": "BLOOM"},
                                    "server_kg_per_hour": {"value": 0.056, "source": "BLOOM"}}}}


def write_score_replicates(root: Path, config: dict, separation: dict[str, float] | None = None,
                           trials: int = 400, resamples: int = 50, seed: int = 0) -> None:
    """Score files of a synthetic list ``syn`` (12 speakers x 4 utterances) and their speaker-bootstrap
    replicates for every job of ``config``; ``separation`` (per architecture, default 2.0) is the target
    scores' shift: the larger, the lower the EER. The jobs' metrics become those of these scores, so that
    every point estimate lies among its replicates as in a real study."""
    import numpy as np

    from svbench.layout import Layout
    from svbench.metrics import compute_all
    from svbench.uncertainty.score_intervals import bootstrap_scores

    layout = Layout(str(root / "results"))
    rng = np.random.default_rng(seed)
    speakers = {f"s{k}u{u}": f"s{k}" for k in range(12) for u in range(4)}
    utts = list(speakers)
    for name in models(config):
        shift = (separation or {}).get(name, 2.0)
        for job_seed in config["seeds"]:
            lines = ["label\tenroll\ttest\tcosine"]
            for _ in range(trials):
                enroll, test = rng.choice(utts, 2, replace=False)
                same = speakers[enroll] == speakers[test]
                lines.append(f"{int(same)}\t{enroll}\t{test}\t{rng.normal(shift * same, 1.0):.6f}")
            scores = Path(layout.scores(name, job_seed, "syn"))
            scores.write_text("\n".join(lines) + "\n")
            table = np.array([line.split("\t") for line in lines[1:]])
            found = compute_all(table[:, 3].astype(float), table[:, 0].astype(int))
            metrics = Path(layout.metrics(name, job_seed))
            written = json.loads(metrics.read_text())
            cosine = {k: found[k] for k in ("eer", "min_dcf_0.01", "min_dcf_0.05")}
            written["syn"] = {"trials": trials, "cosine": cosine}
            metrics.write_text(json.dumps(written))
            bootstrap_scores({"syn": scores}, speakers, Path(layout.replicates(name, job_seed)),
                             resamples=resamples)
