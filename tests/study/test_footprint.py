"""The whole study's footprint (issue 26): every measured job of every step, every attempt, adds up."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
from fakes.study import T0, fake_study, write_job

from svbench.energy.join import read_energy
from svbench.layout import Layout
from svbench.study.footprint import footprint_jobs, footprint_sentence, footprint_table, measured_folders
from svbench.study.summary import energy_of


def _every_job_energy(layout: Layout) -> float:
    """The sum of every energy.csv's job phase over all its attempts, read independently of the footprint."""
    total = 0.0
    for path in Path(layout.path("energy")).rglob("energy.csv"):
        total += energy_of(read_energy(path), "job")["energy_j"]
    return total


def test_the_footprint_adds_every_job_and_attempt_of_every_step(tmp_path: Path) -> None:
    config = fake_study(tmp_path, seeds=(0, 1))
    layout = Layout(str(tmp_path / "results"))
    # data preparation, measured: a feature shard and the corpus
    write_job(Path(layout.work_energy_dir("features", "train-shard0000")), 30.0, 4.0, T0 + 5 * 10**11, [])
    write_job(Path(layout.work_energy_dir("corpus", "synthetic")), 20.0, 2.0, T0 + 6 * 10**11, [])
    # an attempt that did not finish: the training of a seed0 killed once, then rerun
    energy = Path(layout.energy("train", "a", 0))
    frame = pd.read_csv(energy)
    killed = frame.assign(attempt=1, complete=False)
    frame.assign(attempt=2).pipe(lambda f: pd.concat([killed, f])).to_csv(energy, index=False)

    steps = {f.step for f in measured_folders(layout)}
    assert steps == {"features", "corpus", "train", "embed", "score"}, steps
    jobs = footprint_jobs(layout, config)
    table = footprint_table(jobs, config).set_index("step")
    total = table.loc["total"]
    assert math.isclose(total["energy_kwh"] * 3.6e6, _every_job_energy(layout), rel_tol=1e-9)
    assert math.isclose(table.drop(index="total")["energy_kwh"].sum(), total["energy_kwh"], rel_tol=1e-9)
    assert total["unfinished_attempts"] == 1 and total["unfinished_kwh"] > 0
    assert total["attempts"] == total["jobs"] + 1
    assert 0 < total["energy_kwh_low"] < total["energy_kwh_high"]  # the gaps' energy may lift both above the point
    assert total["operational_co2e_g"] > 0 and total["embodied_co2e_g"] > 0
    assert table.loc["features", "jobs"] == 1 and table.loc["train", "jobs"] == 4 * 2
    assert total["estimated_jobs"] == 0  # RAPL in the fake: measured, and the sentence does not say estimated
    assert "estimated" not in footprint_sentence(footprint_table(jobs, config))


def test_an_estimated_footprint_says_so(tmp_path: Path) -> None:
    config = fake_study(tmp_path, seeds=(0,))
    jobs = footprint_jobs(Layout(str(tmp_path / "results")), config)
    some = jobs.assign(basis=["estimated" if i % 2 else b for i, b in enumerate(jobs["basis"])])
    assert f"({len(jobs) // 2} of {len(jobs)} jobs estimated)" in footprint_sentence(footprint_table(some, config))
    every = jobs.assign(basis="estimated")
    assert "kWh (estimated: no sensor was readable)" in footprint_sentence(footprint_table(every, config))


def test_a_job_without_a_sensor_total_is_named_not_zero(tmp_path: Path) -> None:
    config = fake_study(tmp_path, seeds=(0,))
    layout = Layout(str(tmp_path / "results"))
    energy = Path(layout.energy("score", "a", 0))
    frame = pd.read_csv(energy)
    frame["energy_j"] = float("nan")
    frame.to_csv(energy, index=False)
    table = footprint_table(footprint_jobs(layout, config), config).set_index("step")
    assert "score/a/seed0" in table.loc["total", "unmeasured_jobs"]
    assert table.loc["score", "energy_kwh"] > 0  # the other scoring jobs still count


def test_svbench_study_footprint_writes_its_files(tmp_path: Path) -> None:
    config = fake_study(tmp_path, seeds=(0,))
    out = tmp_path / "study dir"
    run = subprocess.run([sys.executable, "-m", "svbench.cli", "study", "footprint", "--results",
                          str(tmp_path / "results"), "--config", json.dumps(config), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("footprint.csv", "footprint.html", "footprint_jobs.csv", "footprint_rules.html", "footprint.png",
                 "footprint.txt"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "footprint.txt").read_text().startswith("The whole study used ")


def test_an_attempt_that_lost_one_of_its_nodes_did_not_finish(tmp_path: Path) -> None:
    """A job on two nodes whose node1 was killed: its job rows per node say so, and the job's sum over the nodes
    (node = all) is not complete; node0's rows, complete, must not make the attempt a finished one."""
    config = fake_study(tmp_path, seeds=(0,))
    layout = Layout(str(tmp_path / "results"))
    energy = Path(layout.energy("train", "a", 0))
    frame = pd.read_csv(energy)
    nodes = [frame.assign(node="node0", complete=True), frame.assign(node="node1", complete=False),
             frame.assign(node="all", complete=False)]
    pd.concat(nodes).to_csv(energy, index=False)
    jobs = footprint_jobs(layout, config)
    train = jobs[(jobs["step"] == "train") & (jobs["job"] == "a/seed0")]
    assert list(train["complete"]) == [False]
    assert footprint_table(jobs, config).set_index("step").loc["total", "unfinished_attempts"] == 1


def test_the_total_keeps_each_sensors_calibration_error(tmp_path: Path) -> None:
    """Every job of the fake study is read by RAPL (tolerance ±10 %, a 95 % half-width). A calibration error does
    not cancel over jobs: drawn per job, 24 jobs' errors averaged out to a ±3 % interval of the total."""
    config = fake_study(tmp_path, seeds=(0, 1))
    jobs = footprint_jobs(Layout(str(tmp_path / "results")), config)
    assert {s for by_sensor in jobs["by_sensor"] for s in by_sensor} == {"rapl"}
    total = footprint_table(jobs, config).set_index("step").loc["total"]
    half = (total["energy_kwh_high"] - total["energy_kwh_low"]) / 2 / total["energy_kwh"]
    assert 0.085 < half < 0.13, half


def test_the_footprint_takes_the_studys_uncertainty_settings(tmp_path: Path) -> None:
    config = fake_study(tmp_path, seeds=(0,))
    jobs = footprint_jobs(Layout(str(tmp_path / "results")), config)
    wide = footprint_table(jobs, config).set_index("step").loc["total"]
    narrow = footprint_table(jobs, config | {"uncertainty": {"level": 0.5}}).set_index("step").loc["total"]
    assert wide["energy_kwh_low"] < narrow["energy_kwh_low"] < narrow["energy_kwh_high"] < wide["energy_kwh_high"]


def test_a_partly_measured_job_makes_the_total_a_lower_bound_and_says_so(tmp_path: Path) -> None:
    config = fake_study(tmp_path, seeds=(0,))
    jobs = footprint_jobs(Layout(str(tmp_path / "results")), config)
    one = jobs.assign(basis=["partial" if i == 0 else b for i, b in enumerate(jobs["basis"])])
    table = footprint_table(one, config)
    assert table.set_index("step").loc["total", "partial_jobs"] == 1
    assert "1 job partly measured (a node or GPUs no sensor read): the total is a lower bound." in \
        footprint_sentence(table)
    assert "partly" not in footprint_sentence(footprint_table(jobs, config))


def test_the_footprint_counts_the_studys_jobs_not_a_stale_folder(tmp_path: Path) -> None:
    """An architecture dropped from the grid leaves its energy folders: the workflow lists the study's jobs
    (--energy), and the footprint of the study counts those alone. A path outside the energy folder is named."""
    config = fake_study(tmp_path, seeds=(0,))
    layout = Layout(str(tmp_path / "results"))
    study = sorted(Path(layout.path("energy")).rglob("energy.csv"))
    write_job(Path(layout.energy_dir("train", "dropped", 0)), 500.0, 4.0, T0 + 7 * 10**11, [])

    def footprint(*energy: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "svbench.cli", "study", "footprint", "--results",
                               str(tmp_path / "results"), "--config", json.dumps(config), "--out",
                               str(tmp_path / "out"), *(["--energy", *map(str, energy)] if energy else [])],
                              capture_output=True, text=True, timeout=300)

    assert footprint(*study).returncode == 0
    jobs = pd.read_csv(tmp_path / "out" / "footprint_jobs.csv")
    assert "dropped/seed0" not in set(jobs["job"]) and len(jobs) == len(study)
    assert footprint().returncode == 0  # without the list: everything found, the stale folder too
    assert "dropped/seed0" in set(pd.read_csv(tmp_path / "out" / "footprint_jobs.csv")["job"])
    elsewhere = tmp_path / "elsewhere" / "energy.csv"
    run = footprint(study[0], elsewhere)
    assert run.returncode == 2 and f"{elsewhere}: not the energy.csv of a measured job" in run.stderr


def test_an_unknown_gpu_count_leaves_the_gpu_figures_empty_not_short(tmp_path: Path) -> None:
    config = fake_study(tmp_path, seeds=(0,))
    jobs = footprint_jobs(Layout(str(tmp_path / "results")), config)
    one = jobs.copy()
    one.loc[one.index[0], ["gpus", "embodied_gpu_co2e_g"]] = math.nan  # a job no sensor told the GPUs of
    total = footprint_table(one, config).set_index("step").loc["total"]
    assert math.isnan(total["gpu_hours"]) and math.isnan(total["embodied_co2e_g"])
    assert total["energy_kwh"] > 0 and total["node_hours"] > 0  # what does not need the count still adds up
