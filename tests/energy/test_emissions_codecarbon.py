"""emissions.csv exactly as CodeCarbon 3.x writes it, read the way its dashboard (carbonboard) reads it;
svbench's own fields in emissions_svbench.csv beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from svbench.cli import main
from svbench.energy.emissions import write_emissions

# CodeCarbon 3.3.0, codecarbon/output_methods/emissions_data.py, EmissionsData's fields in order
# (mlco2/codecarbon tag 3.3.0, commit 4dde6e30f061f9fa718fa0396b284b3c965a5aad); written here as a
# literal, not imported from svbench, so a change on either side fails this test
CODECARBON_3_COLUMNS = [
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
    "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
]
HOUR_NS = 3600 * 10**9
T0 = pd.Timestamp("2024-03-01T00:00:00Z").value
PROJECT = "svbench train x seed0"
CARBON = {"pue": {"value": 1.5, "source": "site"}, "intensity": {"value": 100, "source": "grid"}}


@pytest.fixture
def job(tmp_path: Path) -> Path:
    """energy.csv of a job with two attempts (2 GPUs + CPU, then 1 GPU + CPU) and its sidecar.json."""
    pd.DataFrame({
        "phase": "job", "index": "", "attempt": [1, 1, 1, 2, 2], "t_start_wall_ns": [T0] * 3 + [T0 + HOUR_NS] * 2,
        "t_end_wall_ns": [T0 + HOUR_NS // 2] * 3 + [T0 + 3 * HOUR_NS // 2] * 2, "seconds": [1800.0] * 5,
        "sensor": ["nvml", "nvml", "rapl", "nvml", "estimate"], "channel": ["gpu0", "gpu1", "pkg", "gpu0", "cpu"],
        "component": ["gpu", "gpu", "cpu", "gpu", "cpu"], "energy_j": [3.6e5, 3.6e5, 1.8e5, 7.2e5, 3.6e5],
        "estimated": [False, False, False, False, True]}).to_csv(tmp_path / "energy.csv", index=False)
    (tmp_path / "sidecar.json").write_text(json.dumps({
        "node": {"cpu_model": "Xeon", "logical_cpus": 32, "memory_bytes": 68719476736},
        "sensors": [{"name": "nvml", "available": True,
                     "metadata": {"devices": {"gpu0": {"name": "A100"}, "gpu1": {"name": "A100"}}}}]}))
    return tmp_path


def carbonboard_read(path: Path, project_name: str) -> tuple[pd.DataFrame, dict]:
    """What codecarbon.viz reads (3.3.0): ``carbonboard.viz`` does ``pd.read_csv(filepath)``;
    ``Data.get_project_data`` keeps the project's rows sorted by timestamp as records;
    ``Data.get_project_summary`` and the callbacks use the columns below."""
    df = pd.read_csv(path)
    project_df = df[df.project_name == project_name].sort_values(by="timestamp")
    project_data = project_df.to_dict("records")
    last_run = project_data[-1]
    summary = {
        "last_run": {"timestamp": last_run["timestamp"], "duration": last_run["duration"],
                     "emissions": round(last_run["emissions"], 1),
                     "energy_consumed": round(last_run["energy_consumed"], 1)},
        "total": {k: sum(r[k] for r in project_data) for k in ("duration", "emissions", "energy_consumed")},
        **{k: last_run[k] for k in ("country_name", "country_iso_code", "region", "on_cloud", "cloud_provider",
                                    "cloud_region")},
        "net_energy": sum(df["energy_consumed"]), "net_emissions": sum(df["emissions"]),
    }
    # update_show_regional_comparison / update_on_cloud
    summary["regional"] = summary["country_iso_code"].upper() in ["USA", "CAN"]
    summary["cloud"] = summary["on_cloud"] == "Y"
    return df, summary


def test_header_and_values_as_codecarbon_3(job: Path) -> None:
    carbon = CARBON | {"country_iso_code": "fra", "country_name": "France"}
    write_emissions(job / "energy.csv", job / "sidecar.json", carbon, PROJECT, job / "emissions.csv")
    df, summary = carbonboard_read(job / "emissions.csv", PROJECT)
    assert list(df.columns) == CODECARBON_3_COLUMNS
    assert (job / "emissions.csv").read_text().splitlines()[0] == ",".join(CODECARBON_3_COLUMNS)
    assert len(df) == 2  # one run per attempt
    first = df.iloc[0]
    # 0.2 kWh of GPU + 0.05 kWh of CPU, x PUE 1.5; kg at 100 g/kWh; kg/s; W
    assert first["energy_consumed"] == pytest.approx(0.25 * 1.5)
    assert first["emissions"] == pytest.approx(0.25 * 1.5 * 100 / 1e3)
    assert first["emissions_rate"] == pytest.approx(first["emissions"] / 1800)
    assert first["gpu_power"] == pytest.approx(400.0) and first["pue"] == 1.5
    assert first["gpu_count"] == 2 and first["gpu_model"] == "2 x A100" and first["ram_total_size"] == 64
    assert first["tracking_mode"] == "machine" and df.iloc[1]["tracking_mode"] == "process"
    # the location as CodeCarbon's offline tracker writes it: the 3-letter code, upper-cased; off the cloud
    assert summary["country_iso_code"] == "FRA" and summary["country_name"] == "France"
    assert summary["on_cloud"] == "N" and not summary["cloud"] and not summary["regional"]
    assert pd.isna(summary["cloud_provider"]) and pd.isna(summary["cloud_region"]) and pd.isna(summary["region"])
    assert summary["total"]["energy_consumed"] == pytest.approx(summary["net_energy"])
    # unknown to svbench: empty, never CodeCarbon's defaults (0 water, 0 % utilisation) passed off as measured
    for col in ("experiment_id", "water_consumed", "wue", "ram_energy", "cpu_utilization_percent",
                "gpu_utilization_percent", "ram_utilization_percent", "ram_used_gb", "os", "codecarbon_version"):
        assert df[col].isna().all(), col
    extra = pd.read_csv(job / "emissions_svbench.csv")
    assert list(extra.columns) == ["run_id", "energy_basis"]
    assert extra["run_id"].tolist() == df["run_id"].tolist()
    assert extra["energy_basis"].tolist() == ["measured", "measured+estimated"]


def test_no_country_in_config_leaves_it_empty(job: Path) -> None:
    write_emissions(job / "energy.csv", job / "sidecar.json", CARBON, PROJECT, job / "emissions.csv")
    df = pd.read_csv(job / "emissions.csv")
    assert list(df.columns) == CODECARBON_3_COLUMNS
    assert df["country_iso_code"].isna().all() and df["country_name"].isna().all()
    assert (df["on_cloud"] == "N").all()


def test_cli_writes_both_files(job: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["energy", "emissions", "--energy", str(job / "energy.csv"), "--sidecar", str(job / "sidecar.json"),
              "--carbon", json.dumps(CARBON), "--project", PROJECT, "--out", str(job / "emissions.csv"),
              "--svbench-out", str(job / "extra.csv")])
    assert stop.value.code == 0
    assert list(pd.read_csv(job / "emissions.csv").columns) == CODECARBON_3_COLUMNS
    assert list(pd.read_csv(job / "extra.csv").columns) == ["run_id", "energy_basis"]
    assert not (job / "emissions_svbench.csv").exists()
