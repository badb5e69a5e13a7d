"""The study's analysis (issue 25): the energy model refuses unusable training energies and says why a fit or its
held-out error cannot be made; no knee says which of knee()'s checks failed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from svbench.errors import UserError
from svbench.study.analysis import fit_energy_model, knee, knee_reason

MACS = [0.5, 1.0, 2.0, 4.0]  # GMACs per sample of x0..x3


def _kwh(macs_g: float) -> float:
    """2e-9 J per MAC·sample and 500 J per job, 1000 samples × 10 epochs."""
    return (2e-9 * macs_g * 1e9 * 1e4 + 500) / 3.6e6


def _rows(energy: dict | None = None, macs: dict | None = None, seeds: int = 1) -> pd.DataFrame:
    """x0..x3 (one row per seed), their training energy linear in the work unless ``energy`` sets
    ``{(arch, seed): kWh}``; ``macs`` overrides ``{arch: GMACs}``."""
    energy, macs = energy or {}, macs or {}
    rows = []
    for i, m in enumerate(MACS):
        arch = f"x{i}"
        for seed in range(seeds):
            rows.append({"arch": arch, "seed": seed, "macs_g": macs.get(arch, m), "samples_per_epoch": 1000,
                         "epochs": 10, "train_energy_kwh": energy.get((arch, seed), _kwh(m)),
                         "train_energy_basis": "measured"})
    return pd.DataFrame(rows)


NOT_POSITIVE = "training energy {} kWh, not positive"

# Every way a training energy (or its work) can be unusable, alone or with others: the good architectures are fitted
# exactly as before; each unusable one is named with its reason; held-out error needs 3 usable architectures.
USABLE_CASES = [
    # (case, energy overrides, macs overrides, seeds, usable archs, unusable {arch: reason}, dropped rows)
    ("one zero", {("x1", 0): 0.0}, {}, 1, ["x0", "x2", "x3"], {"x1": NOT_POSITIVE.format(0)}, []),
    ("one negative", {("x2", 0): -0.5}, {}, 1, ["x0", "x1", "x3"], {"x2": NOT_POSITIVE.format(-0.5)}, []),
    ("one NaN", {("x0", 0): math.nan}, {}, 1, ["x1", "x2", "x3"], {"x0": "no training energy"}, []),
    ("one inf", {("x3", 0): math.inf}, {}, 1, ["x0", "x1", "x2"], {"x3": "training energy inf kWh, not finite"}, []),
    ("one -inf", {("x3", 0): -math.inf}, {}, 1, ["x0", "x1", "x2"], {"x3": "training energy -inf kWh, not finite"},
     []),
    ("no work", {}, {"x1": math.nan}, 1, ["x0", "x2", "x3"], {"x1": "no MACs × samples × epochs"}, []),
    ("zero work", {}, {"x1": 0.0}, 1, ["x0", "x2", "x3"], {"x1": "MACs × samples × epochs 0, not positive"}, []),
    ("two bad", {("x1", 0): 0.0, ("x3", 0): math.nan}, {}, 1, ["x0", "x2"],
     {"x1": NOT_POSITIVE.format(0), "x3": "no training energy"}, []),
    ("one seed of two zero", {("x2", 1): 0.0}, {}, 2, ["x0", "x1", "x2", "x3"], {},
     ["x2 seed 1: " + NOT_POSITIVE.format(0)]),
    ("both seeds zero", {("x2", 0): 0.0, ("x2", 1): 0.0}, {}, 2, ["x0", "x1", "x3"],
     {"x2": NOT_POSITIVE.format(0)}, []),
    ("seeds zero and negative", {("x2", 0): 0.0, ("x2", 1): -1.0}, {}, 2, ["x0", "x1", "x3"],
     {"x2": "training energy 0, -1 kWh, not positive"}, []),
]


@pytest.mark.parametrize("case, energy, macs, seeds, usable, unusable, dropped", USABLE_CASES,
                         ids=[c[0] for c in USABLE_CASES])
def test_unusable_training_energies_are_left_out_and_named(case, energy, macs, seeds, usable, unusable, dropped):
    model = fit_energy_model(_rows(energy, macs, seeds))
    # the good rows alone: the fit recovers the cost exactly, as it does on good data
    assert model.j_per_mac == pytest.approx(2e-9) and model.j_per_job == pytest.approx(500)
    assert list(model.fitted) == usable and model.archs == len(usable)
    assert model.unusable == unusable and list(model.dropped) == dropped
    assert list(model.held_out["arch"]) == usable
    if len(usable) >= 3:
        assert model.held_out_reason is None
        assert model.mean_abs_error == pytest.approx(0, abs=1e-9)
    else:
        assert math.isnan(model.mean_abs_error)
        why = "; ".join(f"{a}: {r}" for a, r in unusable.items())
        assert model.held_out_reason == f"{len(usable)} of 4 architectures usable, 3 needed; {why}"


def test_good_data_fits_as_before_with_nothing_left_out():
    model = fit_energy_model(_rows(seeds=2))
    assert model.j_per_mac == pytest.approx(2e-9) and model.j_per_job == pytest.approx(500)
    assert model.archs == 4 and model.unusable == {} and list(model.dropped) == [] and model.held_out_reason is None
    two = fit_energy_model(_rows().iloc[:2])
    assert two.held_out_reason == "2 of 2 architectures usable, 3 needed"


REFUSED_CASES = [
    ("all zero", {(f"x{i}", 0): 0.0 for i in range(4)}, {}, 0,
     {f"x{i}": NOT_POSITIVE.format(0) for i in range(4)}),
    ("all NaN", {(f"x{i}", 0): math.nan for i in range(4)}, {}, 0, {f"x{i}": "no training energy" for i in range(4)}),
    ("one left", {("x0", 0): 0.0, ("x1", 0): -2.0, ("x2", 0): math.inf}, {}, 1,
     {"x0": NOT_POSITIVE.format(0), "x1": NOT_POSITIVE.format(-2), "x2": "training energy inf kWh, not finite"}),
    ("work and energy", {("x0", 0): 0.0}, {"x1": math.nan, "x2": -1.0}, 1,
     {"x0": NOT_POSITIVE.format(0), "x1": "no MACs × samples × epochs",
      "x2": "MACs × samples × epochs -1e+13, not positive"}),
]


@pytest.mark.parametrize("case, energy, macs, usable, unusable", REFUSED_CASES, ids=[c[0] for c in REFUSED_CASES])
def test_a_fit_that_cannot_be_made_says_how_many_were_usable_and_why_not_the_others(case, energy, macs, usable,
                                                                                   unusable):
    with pytest.raises(UserError) as caught:
        fit_energy_model(_rows(energy, macs))
    why = "; ".join(f"{a}: {r}" for a, r in unusable.items())
    assert str(caught.value) == (f"the energy model needs a positive, finite training energy of at least 2 "
                                 f"architectures: {usable} of 4 usable; {why}")


def _summary(tmp_path: Path, frame: pd.DataFrame, name: str = "summary.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _predict(summary: Path, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    from svbench.cli import main

    with pytest.raises(SystemExit) as done:
        main(["predict", "--arch", "ResNet34", "--width", "4", "--summary", str(summary), "--epochs", "3",
              "--samples", "50"])
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


# svbench predict: every kind of summary, what it says about the fit and the held-out error.
PREDICT_CASES = [
    # (case, energy overrides, rename x1 to the predicted preset, exit code, must be in the output, must not be)
    ("all zero", {(f"x{i}", 0): 0.0 for i in range(4)}, False, 2,
     ["0 of 4 usable", "x0: training energy 0 kWh, not positive", "x3: training energy 0 kWh, not positive"],
     ["predicted training energy", "needs at least 3"]),
    ("two of four usable", {("x1", 0): 0.0, ("x3", 0): math.nan}, False, 0,
     ["held-out error: not testable (2 of 4 architectures usable, 3 needed; x1: training energy 0 kWh, not "
      "positive; x3: no training energy)"], ["needs at least 3", "in the fit"]),
    ("three of four usable", {("x1", 0): 0.0}, False, 0,
     ["over 3 architectures left out one at a time", "left out of the fit: x1: training energy 0 kWh, not positive"],
     ["not testable"]),
    ("good", {}, False, 0, ["held-out error of the model: mean 0%, max 0% over 4 architectures"],
     ["not testable", "left out of the fit", "in the fit"]),
    ("predicted arch in the fit", {}, True, 0, ["(this architecture is in the fit)"], []),
    ("predicted arch unusable", {("x1", 0): 0.0}, True, 0,
     ["left out of the fit: ResNet34_w4: training energy 0 kWh, not positive"], ["(this architecture is in the fit)"]),
]


@pytest.mark.parametrize("case, energy, rename, code, present, absent", PREDICT_CASES,
                         ids=[c[0] for c in PREDICT_CASES])
def test_predict_states_the_reason_that_held(tmp_path, capsys, case, energy, rename, code, present, absent):
    frame = _rows(energy)
    if rename:
        frame["arch"] = frame["arch"].replace({"x1": "ResNet34_w4"})
        present = [p.replace("x1", "ResNet34_w4") for p in present]
    status, out, err = _predict(_summary(tmp_path, frame), capsys)
    text = out + err
    assert status == code, text
    if code == 2:
        assert err.startswith("svbench: error: the energy model needs") and err.count("\n") == 1
    else:
        assert "predicted training energy: 0 kWh" not in out
    for p in present:
        assert p in text, text
    for a in absent:
        assert a not in text, text


# knee(): every reason it can return None, each stated by knee_reason as what was checked.
KNEE_CASES = [
    ("two points", [1.0, 10.0], [10.0, 5.0], "2 Pareto-optimal architectures, 3 needed"),
    ("three, one dominated", [1.0, 10.0, 100.0], [10.0, 5.0, 6.0], "2 Pareto-optimal architectures, 3 needed"),
    ("one point", [1.0], [10.0], "1 Pareto-optimal architecture, 3 needed"),
    ("NaN left out", [1.0, np.nan, 100.0], [10.0, 5.0, 4.0], "2 Pareto-optimal architectures, 3 needed"),
    ("none finite", [np.nan, np.nan], [1.0, 2.0], "0 Pareto-optimal architectures, 3 needed"),
    ("bends the other way", [1.0, 10.0, 100.0], [10.0, 9.5, 1.0],
     "none of the 3 Pareto-optimal architectures lies above the chord from the cheapest to the most accurate "
     "(energy on a log scale): the front does not bend towards a knee"),
    ("straight on a log scale", [1.0, 10.0, 100.0, 1000.0], [4.0, 3.0, 2.0, 1.0],
     "none of the 4 Pareto-optimal architectures lies above the chord from the cheapest to the most accurate "
     "(energy on a log scale): the front does not bend towards a knee"),
    ("energy zero on the front", [0.0, 10.0, 100.0], [10.0, 5.0, 4.0],
     "a Pareto-optimal architecture has a training energy ≤ 0, which a log scale cannot place"),
    ("a knee", [1.0, 10.0, 100.0, 1000.0, 50.0], [20.0, 10.0, 9.0, 8.5, 15.0], None),
]


@pytest.mark.parametrize("case, cost, error, reason", KNEE_CASES, ids=[c[0] for c in KNEE_CASES])
def test_knee_reason_states_what_knee_checked(case, cost, error, reason):
    cost, error = np.array(cost), np.array(error)
    assert knee_reason(cost, error) == reason
    assert (knee(cost, error) is None) == (reason is not None)
