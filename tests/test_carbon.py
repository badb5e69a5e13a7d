"""Carbon factors with their sources, grid intensity (constant or a time series) and operational CO2e."""

from __future__ import annotations

import pandas as pd
import pytest

from svbench.energy.carbon import Factor, Intensity, operational_g, read_intensity_series

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
    # before the first timestamp: the first value; after the last: the last value
    assert hourly.mean_over(T0 - 3 * h, T0 - h) == pytest.approx(100)
    assert hourly.mean_over(T0 - h, T0 + h) == pytest.approx(100)
    assert hourly.mean_over(T0 + 5 * h, T0 + 9 * h) == pytest.approx(400)
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
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv.*carbon\.intensity\.series"):
        read_intensity_series(tmp_path / "nowhere.csv")


def test_operational_g_arithmetic(hourly):
    pue = Factor(1.5, "ratio", "site")
    kwh = 3.6e6
    assert operational_g(kwh, T0, T0 + HOUR_NS, pue, Intensity(value=100.0, source="s")) == pytest.approx(150.0)
    assert operational_g(0.0, T0, T0 + HOUR_NS, pue, Intensity(value=100.0, source="s")) == 0.0
    # a series: 1 kWh spent from 00:30 to 01:30 at a mean of 150 g/kWh, PUE 1.5
    assert operational_g(kwh, T0 + HOUR_NS // 2, T0 + 3 * HOUR_NS // 2, pue, hourly) == pytest.approx(225.0)
