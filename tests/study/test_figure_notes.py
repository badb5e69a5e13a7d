"""What the figures write where they cannot draw something (issue 25, item 8): the reason the code checked, never
another one."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from svbench.study import figures

NAN = float("nan")


def _texts(ax: plt.Axes) -> str:
    """The axes' texts, one a line, each with its wrapping undone."""
    return "\n".join(" ".join(t.get_text().split()) for t in ax.texts)


def _panel(x: list[float], y: list[float], names: list[str] | None = None) -> str:
    names = names or [f"m{i}" for i in range(len(x))]
    fig, ax = plt.subplots()
    x_, y_ = np.array(x, dtype=float), np.array(y, dtype=float)
    bars = np.zeros((2, len(x)))
    figures._trade_off_panel(ax, x_, bars, y_, bars, names, "training energy (kWh)", "EER (%)")
    plt.close(fig)
    return _texts(ax)


KNEE_BENDS_BACK = ("none of the 3 Pareto-optimal architectures lies above the chord from the cheapest to the most "
                   "accurate (energy on a log scale): the front does not bend towards a knee")

# The trade-off panel: why there is no knee, and why an architecture is not placed, as each was checked.
PANEL_CASES = [
    # (case, energy, EER, must be in the notes, must not be)
    ("front bends the other way", [1.0, 10.0, 100.0], [10.0, 9.5, 1.0], ["knee: none, " + KNEE_BENDS_BACK],
     ["needs ≥ 3"]),
    ("two on the front", [1.0, 10.0, 100.0], [10.0, 5.0, 6.0],
     ["knee: none, 2 Pareto-optimal architectures, 3 needed"], []),
    ("a knee", [1.0, 10.0, 100.0, 1000.0], [20.0, 10.0, 9.0, 8.5], [], ["knee: none"]),
    ("no energy at all", [NAN, NAN, NAN], [1.0, 2.0, 3.0], ["no energy for any architecture"], ["accuracy"]),
    ("energy 0 everywhere", [0.0, 0.0, NAN], [1.0, 2.0, 3.0],
     ["no energy > 0 for any architecture (a log axis cannot place 0)"], ["accuracy"]),
    ("no accuracy at all", [1.0, 2.0, 3.0], [NAN, NAN, NAN], ["no accuracy for any architecture"],
     ["no energy"]),
    ("energy and accuracy never together", [1.0, NAN, 3.0], [NAN, 2.0, NAN],
     ["no architecture has both an energy > 0 and an accuracy"], ["no energy measured for any"]),
    ("one without accuracy", [1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, NAN], ["no accuracy: m3"], ["no energy"]),
    ("one without energy", [1.0, 2.0, 3.0, NAN], [4.0, 3.0, 2.0, 1.0], ["no energy: m3"], ["no accuracy"]),
    ("one at energy 0", [1.0, 2.0, 3.0, 0.0], [4.0, 3.0, 2.0, 1.0], ["energy ≤ 0: m3"], ["no energy:"]),
]


@pytest.mark.parametrize("case, x, y, present, absent", PANEL_CASES, ids=[c[0] for c in PANEL_CASES])
def test_trade_off_panel_notes_say_what_was_checked(case, x, y, present, absent):
    text = _panel(x, y)
    for p in present:
        assert p in text, text
    for a in absent:
        assert a not in text, text


def test_corner_notes_do_not_overlap():
    # no knee and an architecture without energy: both said, in one note, not two texts on one spot
    fig, ax = plt.subplots()
    x, y = np.array([1.0, 10.0, 100.0, NAN]), np.array([10.0, 9.5, 1.0, 2.0])
    bars = np.zeros((2, 4))
    figures._trade_off_panel(ax, x, bars, y, bars, ["a", "b", "c", "d"], "energy", "EER")
    plt.close(fig)
    corner = [t for t in ax.texts if t.get_position() == (0.01, 0.01)]
    assert len(corner) == 1 and "knee: none" in corner[0].get_text() and "no energy: d" in corner[0].get_text()


FIT_CASES = [
    # (case, size, energy, must be in the note)
    ("one with energy", [1.0, 2.0, 4.0], [1.0, NAN, NAN],
     "fit: 1 architecture with params and energy > 0, 2 needed"),
    ("one with size", [1.0, NAN, NAN], [1.0, 2.0, 3.0], "fit: 1 architecture with params and energy > 0, 2 needed"),
    ("energy 0", [1.0, 2.0, 4.0], [1.0, 0.0, 0.0], "fit: 1 architecture with params and energy > 0, 2 needed"),
    ("same size", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0], "fit: the 3 architectures with energy all have the same params"),
]


@pytest.mark.parametrize("case, x, y, note", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_size_fit_note_says_which_condition_failed(case, x, y, note):
    fig, ax = plt.subplots()
    figures._loglog_fit(ax, np.array(x), np.array(y), "params")
    plt.close(fig)
    assert _texts(ax) == note


@pytest.fixture
def drawn(monkeypatch):
    """The figures a function saves, kept open to read their texts."""
    made: list[plt.Figure] = []

    def keep(fig: plt.Figure, out: Path) -> Path:
        made.append(fig)
        plt.close(fig)
        return out

    monkeypatch.setattr(figures, "_save", keep)
    return made


def _phases(**columns) -> pd.DataFrame:
    base = {"arch": ["a", "b"], "seed": [0, 0], "step": ["train", "train"], "phase": ["job", "job"],
            "energy_j": [100.0, 200.0], "gpu_j": [50.0, 100.0], "cpu_j": [40.0, 80.0], "dram_j": [10.0, 20.0],
            "rest_of_node_j": [NAN, NAN], "idle_j": [30.0, 60.0], "dynamic_j": [70.0, 140.0],
            "basis": ["measured", "measured"]}
    return pd.DataFrame(base | columns)


IDLE_CASES = [
    # (case, phases, must be in the notes, must not be)
    ("no phases", pd.DataFrame(columns=["arch", "seed", "step", "phase", "energy_j", "basis"]),
     ["no energy measured"], ["idle baseline"]),
    ("no idle baseline", _phases(idle_j=[NAN, NAN], dynamic_j=[NAN, NAN]),
     ["no idle baseline measured (energy.baseline_s)"], ["no energy measured"]),
    ("phases without the idle column", _phases().drop(columns=["idle_j", "dynamic_j"]),
     ["no idle baseline measured (energy.baseline_s)"], ["no energy measured"]),
    ("idle measured", _phases(), [], ["no energy measured", "idle baseline"]),
]


@pytest.mark.parametrize("case, phases, present, absent", IDLE_CASES, ids=[c[0] for c in IDLE_CASES])
def test_idle_figure_says_whether_energy_or_the_baseline_is_missing(tmp_path, drawn, case, phases, present, absent):
    figures.idle_vs_dynamic(phases, tmp_path / "idle.png")
    text = "\n".join(_texts(ax) for ax in drawn[0].axes)
    for p in present:
        assert p in text, text
    for a in absent:
        assert a not in text, text


def test_stacked_bars_tell_no_energy_from_energy_zero():
    for table, note in ((pd.DataFrame({"gpu": [NAN, NAN]}, index=["a", "b"]), "no energy measured"),
                        (pd.DataFrame({"gpu": [0.0, 0.0]}, index=["a", "b"]), "no energy > 0 to show")):
        fig, ax = plt.subplots()
        figures._stacked_bars(ax, table, figures.COMPONENT_COLOURS, "J", False, "training")
        plt.close(fig)
        assert _texts(ax) == note


def test_timeline_says_whether_the_trace_is_missing_or_has_no_power(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "trace.csv").write_text("t_wall_ns,t_mono_ns,sensor,channel,quantity,value,unit,component,estimated\n"
                                     "1000000000,1,nvml,gpu0,temperature,50,C,gpu,0\n"
                                     "2000000000,2,nvml,gpu0,temperature,51,C,gpu,0\n")
    no_power = "no power over time in trace.csv (power readings, or energy counters read twice)"
    for folder, note in ((tmp_path / "none", "no trace.csv"), (empty, no_power)):
        fig, ax = plt.subplots()
        figures._timeline_panel(ax, folder / "trace.csv", folder / "markers.jsonl", "a, seed 0")
        plt.close(fig)
        assert _texts(ax) == note


def test_size_figure_tells_no_energy_from_energy_zero(tmp_path, drawn):
    frame = pd.DataFrame({"arch": ["a", "b"], "seed": [0, 0], "params_m": [1.0, 2.0], "macs_g": [0.1, 0.2],
                          "train_energy_kwh": [0.0, 0.0], "train_energy_basis": ["measured", "measured"]})
    figures.energy_vs_size(frame, tmp_path / "size.png")
    assert "no training energy > 0 for any architecture" in _texts(drawn[0].axes[0])
    figures.energy_vs_size(frame.assign(train_energy_kwh=NAN), tmp_path / "size.png")
    assert "no training energy measured" in _texts(drawn[1].axes[0])


def test_stage_bars_say_which_value_is_missing(tmp_path, drawn):
    frame = pd.DataFrame({"arch": ["p", "q"], "seed": [0, 0], "block": "basic", "widths": "4-8-16-32",
                          "stages": ["1-1-2-2", "2-2-1-1"], "eer_cosine_syn": [NAN, 5.0],
                          "train_energy_kwh": [1.0, NAN], "train_energy_basis": "measured"})
    figures.stage_distribution(frame, tmp_path / "stages.png")
    eer, energy = drawn[0].axes[0], drawn[0].axes[1]
    assert _texts(eer).split("\n") == ["no EER", "5"]
    assert _texts(energy).split("\n") == ["1", "no energy"]
