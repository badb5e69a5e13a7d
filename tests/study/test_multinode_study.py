"""A study whose largest architecture trained on two nodes (issue 24): its training energy is the sum of both
nodes' totals, its hours are wall hours (not summed over nodes), its GPUs and servers are both nodes', the
closure has a row per node, the timeline a panel per node, and a node without a trace makes the figure
partial and is named, never counted as zero."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fakes.study import T0, fake_study, write_job, write_score_replicates

from svbench.energy.node_join import join_nodes
from svbench.layout import Layout
from svbench.study.figures import power_timeline
from svbench.study.summary import build_summary, closure_rows, job_provenance, summary_rows

WATTS = (100.0, 300.0)
SECONDS = 40.0


def two_node_training(root: Path, arch: str = "c", seed: int = 0, gpus_per_node: int = 2) -> Path:
    """Replace a job's training folder with a two-node job's: each node its own trace, markers and sidecar
    (each with ``gpus_per_node`` GPUs that no sensor read on... none: CUDA_VISIBLE_DEVICES unset, devices 0)."""
    folder = Path(Layout(str(root / "results")).energy_dir("train", arch, seed))
    shutil.rmtree(folder)
    for rank, watts in enumerate(WATTS):
        write_job(folder / f"node{rank}", watts, SECONDS, T0 + rank * 10**6, ["epoch", "epoch"])
        meta = json.loads((folder / f"node{rank}" / "sidecar.json").read_text())
        meta["node"]["host"] = f"host{rank}"
        (folder / f"node{rank}" / "sidecar.json").write_text(json.dumps(meta))
        (folder / f"node{rank}" / "energy.csv").unlink()
    join_nodes(folder, 2, folder / "energy.csv")
    return folder


@pytest.fixture
def study(tmp_path: Path) -> tuple[Path, dict]:
    config = fake_study(tmp_path, seeds=(0,)) | {"uncertainty": {"resamples": 50}}
    write_score_replicates(tmp_path, config, trials=200, resamples=50)
    return tmp_path, config


def _row(frame: list[dict] | pd.DataFrame, arch: str = "c") -> pd.Series:
    frame = pd.DataFrame(frame)
    return frame[frame["arch"] == arch].iloc[0]


def test_a_two_node_training_is_the_sum_of_its_nodes(study) -> None:
    root, config = study
    two_node_training(root)
    row = _row(summary_rows(root / "results", config))
    # write_job's node draws its CPU at W and DRAM at W/10 for SECONDS
    assert row["train_energy_kwh"] == pytest.approx(sum(WATTS) * 1.1 * SECONDS / 3.6e6, rel=1e-3)
    assert row["train_hours"] == pytest.approx(SECONDS / 3600, rel=1e-3)  # wall time, not 2 × SECONDS
    assert row["train_nodes"] == 2 and row["train_energy_basis"] == "measured"
    one = _row(summary_rows(root / "results", config), "a")
    assert one["train_nodes"] == 1
    # embodied server carbon counts both servers for the training's hours (embedding 2 s and scoring 1 s on one)
    assert row["embodied_server_co2e_g"] == pytest.approx(1e3 * 0.056 * (2 * SECONDS + 2.0 + 1.0) / 3600, rel=1e-3)


def test_a_node_without_a_trace_is_named_and_the_figure_partial(study) -> None:
    root, config = study
    folder = two_node_training(root)
    (folder / "node1" / "trace.csv").unlink()
    join_nodes(folder, 2, folder / "energy.csv")
    row = _row(summary_rows(root / "results", config))
    assert row["train_energy_basis"] == "partial"
    assert "node1" in row["train_closure"] and "no trace" in row["train_closure"]
    assert row["train_energy_kwh"] == pytest.approx(WATTS[0] * 1.1 * SECONDS / 3.6e6, rel=1e-3)
    jobs = job_provenance(root / "results", config)
    job = jobs[(jobs["arch"] == "c") & (jobs["step"] == "train")].iloc[0]
    assert job["nodes"] == 2 and job["basis"] == "partial" and "node1" in job["closure"]
    assert job["host"] == "host0 host1"
    # the report's tables say it too
    out = root / "study"
    build_summary(root / "results", config, out)
    assert "node1" in (out / "summary.html").read_text() or "node1" in (out / "summary.csv").read_text()
    assert "partial" in (out / "provenance.html").read_text()


def test_the_closure_has_a_row_per_node_and_the_timeline_a_panel_per_node(study, monkeypatch) -> None:
    root, config = study
    two_node_training(root)
    rows = pd.DataFrame(closure_rows(root / "results", config))
    train = rows[(rows["arch"] == "c") & (rows["step"] == "train")]
    assert list(train["node"]) == ["node0", "node1"]
    assert list(train["energy_j"]) == pytest.approx([w * 1.1 * SECONDS for w in WATTS], rel=1e-3)
    drawn = []
    import svbench.study.figures as figures

    real = figures._timeline_panel
    monkeypatch.setattr(figures, "_timeline_panel", lambda ax, trace, markers, title: (
        drawn.append((trace.parent.name, title)), real(ax, trace, markers, title)))
    power_timeline(root / "results", "train", [("a", 0), ("c", 0)], root / "timeline.png")
    assert [title for _, title in drawn] == ["a, seed 0", "c, seed 0, node0 of 2", "c, seed 0, node1 of 2"]
    assert [folder for folder, _ in drawn][1:] == ["node0", "node1"]
