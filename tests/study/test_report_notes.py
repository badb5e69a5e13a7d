"""study.html states only the reason its code checked (issue 25, class 8): why there is no knee, no Pareto front,
or no held-out error."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from svbench.study.report import write_study_report


def _summary(path: Path, rows: list[tuple[str, float, float, float]]) -> Path:
    """One seed per architecture: (arch, training kWh, EER %, GMACs)."""
    pd.DataFrame([{"arch": a, "seed": 0, "eer_cosine_x": eer, "train_energy_kwh": kwh, "macs_g": macs,
                   "samples_per_epoch": 100, "epochs": 2, "train_energy_basis": "measured"}
                  for a, kwh, eer, macs in rows]).to_csv(path, index=False)
    return path


NAN = math.nan
CASES = [
    # three on a front that bends the other way: enough points, no knee
    ("front bends the wrong way", [("a", 1.0, 10.0, 1), ("b", 10.0, 9.9, 2), ("c", 100.0, 1.0, 4)],
     ["none of the 3 Pareto-optimal architectures lies above the chord"], ["needs at least 3"]),
    ("two on the front", [("a", 1.0, 10.0, 1), ("b", 10.0, 5.0, 2)],
     ["2 Pareto-optimal architectures, 3 needed"], []),
    ("no accuracy", [("a", 1.0, NAN, 1), ("b", 2.0, NAN, 2)],
     ["No accuracy (EER) was measured"], ["No training energy was measured"]),
    ("no energy", [("a", NAN, 10.0, 1), ("b", NAN, 9.0, 2)],
     ["No training energy was measured"], ["accuracy (EER)"]),
    ("held-out error untestable", [("a", 1.0, 10.0, 1), ("b", 0.0, 9.0, 2), ("c", 4.0, 8.0, 4)],
     ["not testable (2 of 3 architectures usable, 3 needed; b: training energy 0 kWh, not positive)"],
     ["needs ≥ 3 architectures"]),
]


@pytest.mark.parametrize("case, rows, present, absent", CASES, ids=[c[0] for c in CASES])
def test_the_study_page_says_the_reason_that_held(tmp_path, case, rows, present, absent):
    summary = _summary(tmp_path / "summary.csv", rows)
    write_study_report(summary, tmp_path / "study.html", tmp_path / "model.json", tmp_path / "model.csv")
    page = " ".join((tmp_path / "study.html").read_text().split())
    for text in present:
        assert text in page, (text, page[-1500:])
    for text in absent:
        assert text not in page
