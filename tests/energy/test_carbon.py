"""Carbon factors with their sources, grid intensity (constant or a time series) and operational CO2e."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from fakes.study import T0 as STUDY_T0  # the fake study's jobs start at this wall-clock time
from fakes.study import fake_study

from svbench.energy.carbon import Factor, Intensity, operational_g, read_intensity_series
from svbench.errors import UserError
from svbench.study.summary import summary_rows

HOUR_NS = 3600 * 10**9
T0 = pd.Timestamp("2024-03-01T00:00:00Z").value  # ns since the epoch


def test_factor_needs_value_and_source():
    f = Factor.from_config({"value": 1.5, "source": "site report 2024"}, "carbon.pue", "ratio")
    assert f == Factor(1.5, "ratio", "site report 2024")
    with pytest.raises(ValueError, match=r"carbon\.pue\.source"):
        Factor.from_config({"value": 1.5}, "carbon.pue", "ratio")
    with pytest.raises(ValueError, match=r"carbon\.pue\.source"):
        Factor.from_config({"value": 1.5, "source": ""}, "carbon.pue", "ratio")
    with pytest.raises(ValueError, match=r"carbon\.pue"):
        Factor.from_config({"source": "x"}, "carbon.pue", "ratio")
    with pytest.raises(ValueError, match=r"carbon\.pue"):
        Factor.from_config(1.5, "carbon.pue", "ratio")  # type: ignore[arg-type]


def test_intensity_constant():
    i = Intensity.from_config({"value": 21.7, "source": "RTE eCO2mix"})
    assert i.source == "RTE eCO2mix"
    assert i.mean_over(T0, T0 + HOUR_NS) == 21.7
    assert i.mean_over(T0, T0) == 21.7
    with pytest.raises(ValueError, match=r"carbon\.intensity\.source"):
        Intensity.from_config({"value": 21.7})
    with pytest.raises(ValueError, match=r"carbon\.intensity"):
        Intensity.from_config({"source": "x"})


@pytest.fixture
def hourly(tmp_path):
    """100 g/kWh from 00:00, 200 from 01:00, 400 from 02:00 (last value holds on)."""
    path = tmp_path / "grid.csv"
    path.write_text("timestamp,gco2e_per_kwh\n"
                    "2024-03-01T01:00:00Z,200\n"  # out of order on purpose: the series is sorted
                    "2024-03-01T00:00:00Z,100\n"
                    "2024-03-01 02:00,400\n")  # naive time: UTC
    return Intensity.from_config({"series": str(path), "source": "grid operator export"})


def test_intensity_series_time_weighted_mean(hourly):
    h = HOUR_NS
    # inside one step
    assert hourly.mean_over(T0 + h // 4, T0 + h // 2) == pytest.approx(100)
    assert hourly.mean_over(T0 + h + 10, T0 + h + 20) == pytest.approx(200)
    # across steps: half an hour at 100, a full hour at 200, half an hour at 400
    assert hourly.mean_over(T0 + h // 2, T0 + 5 * h // 2) == pytest.approx((0.5 * 100 + 200 + 0.5 * 400) / 2)
    # exactly on the edges of one step
    assert hourly.mean_over(T0 + h, T0 + 2 * h) == pytest.approx(200)
    # the last value holds for one step (an hour here)
    assert hourly.mean_over(T0 + 3 * h // 2, T0 + 3 * h) == pytest.approx((0.5 * 200 + 1 * 400) / 1.5)
    # an instant takes the value in force then
    assert hourly.mean_over(T0 + 3 * h // 2, T0 + 3 * h // 2) == pytest.approx(200)


@pytest.mark.parametrize("body, line", [
    ("2024-03-01T00:00:00Z,100\nyesterday,200\n", 3),
    ("2024-03-01T00:00:00Z,100\n2024-03-01T01:00:00Z,\n", 3),
    ("2024-03-01T00:00:00Z,n/a\n", 2),
    ("2024-03-01T00:00:00Z,100\n2024-03-01T01:00:00Z,200\n2024-03-01T02:00:00Z,-5\n", 4),
])
def test_malformed_series_names_file_and_line(tmp_path, body, line):
    path = tmp_path / "grid.csv"
    path.write_text("timestamp,gco2e_per_kwh\n" + body)
    with pytest.raises(ValueError, match=rf"grid\.csv:{line}:"):
        read_intensity_series(path)


def test_series_file_errors_name_the_file(tmp_path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("time,intensity\n2024-03-01T00:00:00Z,100\n")
    with pytest.raises(ValueError, match=r"wrong\.csv: missing column"):
        read_intensity_series(wrong)
    empty = tmp_path / "empty.csv"
    empty.write_text("timestamp,gco2e_per_kwh\n")
    with pytest.raises(ValueError, match=r"empty\.csv: .*no rows"):
        read_intensity_series(empty)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("timestamp,gco2e_per_kwh\n2024-03-01T00:00:00Z,100,7\n")
    with pytest.raises(ValueError, match=r"ragged\.csv"):
        read_intensity_series(ragged)
    with pytest.raises(ValueError, match=r"nowhere\.csv.*carbon\.intensity\.series"):
        read_intensity_series(tmp_path / "nowhere.csv")


def test_a_time_outside_the_series_is_an_error_unless_the_edge_is_asked_for(tmp_path, hourly):
    h = HOUR_NS
    for start, end in ((T0 - 3 * h, T0 - h), (T0 - h, T0 + h), (T0 + 5 * h, T0 + 9 * h)):
        with pytest.raises(ValueError, match=r"grid\.csv: the grid intensity series covers .*intensity\.outside"):
            hourly.mean_over(start, end)
    with pytest.raises(ValueError, match=r"grid\.csv"):
        hourly.at(np.array([T0 + 4 * h]))
    edge = Intensity.from_config({"series": str(tmp_path / "grid.csv"), "source": "grid", "outside": "edge"})
    assert edge.mean_over(T0 - 3 * h, T0 - h) == pytest.approx(100) and edge.edge_used
    assert "edge value" in edge.label
    assert edge.mean_over(T0 + 5 * h, T0 + 9 * h) == pytest.approx(400)


def test_operational_g_arithmetic(hourly):
    pue = Factor(1.5, "ratio", "site")
    kwh = 3.6e6
    assert operational_g(kwh, T0, T0 + HOUR_NS, pue, Intensity(value=100.0, source="s")) == pytest.approx(150.0)
    assert operational_g(0.0, T0, T0 + HOUR_NS, pue, Intensity(value=100.0, source="s")) == 0.0
    # a series: 1 kWh spent from 00:30 to 01:30 at a mean of 150 g/kWh, PUE 1.5
    assert operational_g(kwh, T0 + HOUR_NS // 2, T0 + 3 * HOUR_NS // 2, pue, hourly) == pytest.approx(225.0)


def _study(tmp_path, intensity):
    config = fake_study(tmp_path, seeds=(0, 1))
    config["carbon"]["intensity"] = intensity
    return pd.DataFrame(summary_rows(tmp_path / "results", config))


def test_intensity_series_changes_carbon_per_span(tmp_path):
    constant = _study(tmp_path, {"value": 100.0, "source": "s"})
    # 100 g/kWh until seed 1's training starts (T0 + 1000 s), 400 from then on
    series = tmp_path / "grid.csv"
    start = pd.Timestamp(STUDY_T0, unit="ns", tz="UTC")
    series.write_text("timestamp,gco2e_per_kwh\n"
                      f"{start.isoformat()},100\n{(start + pd.Timedelta(seconds=1000)).isoformat()},400\n")
    hourly = _study(tmp_path, {"series": str(series), "source": "grid operator export"})
    seed0, seed1 = (hourly["seed"] == 0), (hourly["seed"] == 1)
    assert hourly.loc[seed0, "train_co2e_g"].to_numpy() == pytest.approx(constant.loc[seed0, "train_co2e_g"])
    assert hourly.loc[seed1, "train_co2e_g"].to_numpy() == pytest.approx(4 * constant.loc[seed1, "train_co2e_g"])
    assert (hourly.loc[seed1, "intensity_g_per_kwh"] == 400).all()
    # energy and embodied carbon do not depend on the grid
    assert hourly["train_energy_kwh"].to_numpy() == pytest.approx(constant["train_energy_kwh"])
    assert hourly["embodied_co2e_g"].to_numpy() == pytest.approx(constant["embodied_co2e_g"])


def test_emissions_csv_is_codecarbon_shaped(tmp_path):
    from svbench.energy.emissions import COLUMNS, write_emissions

    energy = pd.DataFrame({
        "phase": "job", "attempt": [1, 1, 1, 2, 2], "t_start_wall_ns": [T0] * 3 + [T0 + HOUR_NS] * 2,
        "t_end_wall_ns": [T0 + HOUR_NS // 2] * 3 + [T0 + 3 * HOUR_NS // 2] * 2, "seconds": [1800.0] * 5,
        "sensor": ["nvml", "nvml", "rapl", "nvml", "rapl"], "channel": ["gpu0", "gpu1", "pkg", "gpu0", "pkg"],
        "component": ["gpu", "gpu", "cpu", "gpu", "cpu"], "energy_j": [3.6e5, 3.6e5, 1.8e5, 7.2e5, 3.6e5],
        "estimated": False})
    energy.to_csv(tmp_path / "energy.csv", index=False)
    sidecar = tmp_path / "sidecar.json"
    sidecar.write_text('{"node": {"cpu_model": "Xeon", "logical_cpus": 32, "memory_bytes": 68719476736}, '
                       '"sensors": [{"name": "nvml", "available": true, "metadata": {"devices": '
                       '{"gpu0": {"name": "A100"}, "gpu1": {"name": "A100"}}}}]}')
    carbon = {"pue": {"value": 1.5, "source": "site"}, "intensity": {"value": 100, "source": "grid"}}
    write_emissions(tmp_path / "energy.csv", sidecar, carbon, "svbench train x seed0", tmp_path / "emissions.csv")
    out = pd.read_csv(tmp_path / "emissions.csv")
    assert list(out.columns) == COLUMNS and COLUMNS[:14] == [
        "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate", "cpu_power",
        "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed"]
    assert len(out) == 2  # one run per attempt
    first = out.iloc[0]
    # 0.25 kWh of GPU + 0.05 kWh of CPU, x PUE 1.5 (CodeCarbon applies PUE to energy); kg at 100 g/kWh
    assert first["gpu_energy"] == pytest.approx(0.2 * 1.5) and first["cpu_energy"] == pytest.approx(0.05 * 1.5)
    assert first["energy_consumed"] == pytest.approx(0.25 * 1.5)
    assert first["emissions"] == pytest.approx(0.25 * 1.5 * 100 / 1e3)
    assert first["emissions_rate"] == pytest.approx(first["emissions"] / 1800)
    assert first["gpu_power"] == pytest.approx(400.0) and first["duration"] == 1800
    assert first["gpu_count"] == 2 and first["gpu_model"] == "2 x A100" and first["ram_total_size"] == 64
    assert out.iloc[1]["gpu_count"] == 1
    assert pd.isna(first["ram_energy"]) and pd.isna(first["country_name"])  # no sensor, no guess: empty
    assert first["pue"] == 1.5
    extra = pd.read_csv(tmp_path / "emissions_svbench.csv")
    assert extra["run_id"].tolist() == out["run_id"].tolist() and (extra["energy_basis"] == "measured").all()


# Issue 25, item 4: one instant, one value. Every way two rows can name the same instant: the same text adjacent
# or apart, the same instant in two offsets, Z against +00:00, an offset against a naive (UTC) time; the
# line numbers are those of the file (the header is line 1).
@pytest.mark.parametrize("rows, first, second", [
    (["2026-01-01T00:00:00Z,100", "2026-01-01T00:00:00Z,200", "2026-01-01T01:00:00Z,300"], 2, 3),  # adjacent
    (["2026-01-01T00:00:00Z,100", "2026-01-01T01:00:00Z,200", "2026-01-01T00:00:00Z,300"], 2, 4),  # apart
    (["2026-01-01T02:00:00Z,100", "2026-01-01T00:00:00Z,200", "2026-01-01T01:00:00Z,250",
      "2026-01-01T02:00:00Z,300"], 2, 5),  # apart, and out of order
    (["2026-01-01T00:00:00Z,100", "2026-01-01T01:00:00+01:00,200"], 2, 3),  # two offsets, one instant
    (["2026-01-01T06:00:00-05:00,100", "2026-01-01T00:00:00Z,150", "2026-01-01T12:00:00+01:00,200"], 2, 4),
    (["2026-01-01T00:00:00+00:00,100", "2026-01-01T00:00:00Z,200"], 2, 3),  # +00:00 is Z
    (["2026-01-01 00:00,100", "2026-01-01T00:00:00Z,200"], 2, 3),  # naive is UTC
    (["2026-01-01T00:00:00,100", "2026-01-01T01:00:00+01:00,200"], 2, 3),  # naive against an offset
])
def test_two_rows_at_one_instant_are_refused_naming_both_lines(tmp_path, rows, first, second):
    path = tmp_path / "grid.csv"
    path.write_text("timestamp,gco2e_per_kwh\n" + "\n".join(rows) + "\n")
    with pytest.raises(UserError) as caught:
        read_intensity_series(path)
    message = str(caught.value)
    assert "\n" not in message
    assert re.match(rf"{re.escape(str(path))}:{second}: .*\bline {first}\b", message), message
    assert "same instant" in message


# Issue 25, item 4: an explicit offset (or Z) is honoured; a naive time is UTC.
@pytest.mark.parametrize("text, utc", [
    ("2026-01-01T00:00:00+01:00", "2025-12-31T23:00:00Z"),  # one hour earlier than the naive text
    ("2026-01-01T00:00:00-05:00", "2026-01-01T05:00:00Z"),
    ("2026-01-01T00:00:00+05:30", "2025-12-31T18:30:00Z"),
    ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    ("2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00Z"),
    ("2026-01-01T00:00:00", "2026-01-01T00:00:00Z"),  # naive: UTC
    ("2026-01-01 00:00", "2026-01-01T00:00:00Z"),
])
def test_offsets_are_honoured_and_naive_times_are_utc(tmp_path, text, utc):
    path = tmp_path / "grid.csv"
    # each row parsed by its own rule, whatever the other rows are (naive and offset mixed)
    path.write_text(f"timestamp,gco2e_per_kwh\n{text},100\n2026-01-02T00:00:00,200\n2026-01-03T00:00:00+02:00,300\n")
    series = read_intensity_series(path)
    assert series.index[0] == pd.Timestamp(utc)
    assert list(series.index[1:]) == [pd.Timestamp("2026-01-02T00:00:00Z"), pd.Timestamp("2026-01-02T22:00:00Z")]


def test_a_series_in_local_time_applies_an_hour_earlier_than_the_same_naive_text(tmp_path):
    paris, naive = tmp_path / "paris.csv", tmp_path / "naive.csv"
    paris.write_text("timestamp,gco2e_per_kwh\n2026-01-01T00:00:00+01:00,100\n2026-01-01T01:00:00+01:00,200\n")
    naive.write_text("timestamp,gco2e_per_kwh\n2026-01-01T00:00:00,100\n2026-01-01T01:00:00,200\n")
    at = pd.Timestamp("2026-01-01T00:30:00Z").value  # 01:30 in Paris: the second value there, the first in UTC
    local = Intensity.from_config({"series": str(paris), "source": "RTE eCO2mix, local time"})
    utc = Intensity.from_config({"series": str(naive), "source": "RTE eCO2mix, UTC"})
    assert local.mean_over(at, at) == 200 and utc.mean_over(at, at) == 100
