import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from svbench.study.figures import pareto_front
from svbench.study.grid import arch_table, specs_from_grid
from svbench.study.summary import energy_of
from svbench.study.tables import write_table


def _rows(*rows: tuple) -> pd.DataFrame:
    cols = ["phase", "index", "attempt", "seconds", "component", "energy_j", "coverage", "estimated",
            "t_start_wall_ns", "t_end_wall_ns"]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows], columns=cols)


def test_energy_prefers_the_node_meter_and_keeps_components() -> None:
    frame = _rows(("job", None, 1, 10.0, "gpu", 1000.0, 1.0, False, 0, 10),
                  ("job", None, 1, 10.0, "cpu", 300.0, 1.0, False, 0, 10),
                  ("job", None, 1, 10.0, "node", 2000.0, 0.9, False, 0, 10))
    e = energy_of(frame, "job")
    assert e["energy_j"] == 2000.0 and e["basis"] == "measured" and e["coverage"] == 0.9
    assert e["gpu_j"] == 1000.0 and math.isnan(e["dram_j"])


def test_energy_sums_components_and_attempts_and_labels_estimates() -> None:
    frame = _rows(("job", None, 1, 5.0, "cpu", 10.0, 1.0, True, 0, 5),
                  ("job", None, 2, 5.0, "cpu", 20.0, 1.0, True, 10, 15),
                  ("job", None, 2, 5.0, "gpu", 100.0, 1.0, False, 10, 15))
    e = energy_of(frame, "job")
    assert e["energy_j"] == 130.0
    assert e["basis"] == "measured+estimated"
    assert e["seconds"] == 10.0  # two attempts of 5 s


def test_no_sensor_is_empty_not_zero() -> None:
    e = energy_of(_rows(), "job")
    assert math.isnan(e["energy_j"]) and e["basis"] == "not measured"
    psys_only = _rows(("job", None, 1, 5.0, "other", 10.0, 1.0, False, 0, 5))
    assert math.isnan(energy_of(psys_only, "job")["energy_j"])  # psys is never added to components


def test_pareto_front() -> None:
    cost = np.array([1.0, 2.0, 3.0, 4.0, 2.5])
    err = np.array([10.0, 8.0, 9.0, 5.0, 7.0])
    assert pareto_front(cost, err).tolist() == [0, 1, 4, 3]


def test_grid_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match=r"grid\[1\].name"):
        specs_from_grid([{"preset": "ResNet18", "width": 8, "name": "a"}, {"preset": "ResNet34", "width": 8,
                                                                          "name": "a"}])


def test_arch_table_lists_params_and_macs() -> None:
    table = arch_table(specs_from_grid([{"preset": "ResNet34"}]))
    assert "ResNet34" in table and "6.634" in table and "4.528" in table


def test_tables_show_missing_as_a_dash(tmp_path: Path) -> None:
    write_table(pd.DataFrame({"arch": ["a"], "gpu_kwh": [float("nan")], "cpu_kwh": [0.5]}), tmp_path / "t", "cap")
    html = (tmp_path / "t.html").read_text()
    assert "—" in html and "cap" in html and ">0<" not in html
    assert (tmp_path / "t.tex").read_text().startswith("\\begin{table}")
    assert pd.read_csv(tmp_path / "t.csv")["gpu_kwh"].isna().all()
