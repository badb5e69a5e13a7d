"""The trade-off under uncertainty: CO2e intervals from the carbon factors' ranges, intervals per architecture,
how often each architecture is Pareto-optimal or the knee, and the paired differences."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes.study import fake_study, write_score_replicates

from svbench.errors import UserError
from svbench.study.summary import build_summary
from svbench.study.tradeoff import differences_table, pareto_table

# triangular [20, 50, 80]: its 2.5 % quantile is 20 + sqrt(0.025 * 60 * 30), the 97.5 % one symmetric
TRIANGLE = {"value": 50.0, "low": 20.0, "high": 80.0, "source": "a grid with a range"}
Q_LOW, Q_HIGH = 20 + math.sqrt(0.025 * 60 * 30), 80 - math.sqrt(0.025 * 60 * 30)


def _exact_sensors(config: dict) -> dict:
    return config | {"energy": {"rapl": {"tolerance": 0.0}}, "uncertainty": {"resamples": 20_000}}


def _factors(intensity: dict) -> dict:
    from svbench.energy.carbon import factors_from_config

    return factors_from_config({"pue": {"value": 1.2, "source": "site"}, "intensity": intensity})


def test_an_intensity_range_gives_the_triangular_quantiles_on_operational_co2e() -> None:
    from svbench.uncertainty.study_draws import StudyDraws

    draws = StudyDraws(40_000, 0, {"rapl": 0.0, "estimate": 0.5}, _factors(TRIANGLE))
    measured = {"energy_j": 3.6e6, "by_sensor": {"rapl": 3.6e6}, "gap_j": 0.0}  # 1 kWh, an exact sensor, no gap
    row = {"train_energy_kwh": 1.0, "train_co2e_g": 60.0, "embodied_gpu_co2e_g": math.nan,
           "embodied_server_co2e_g": 5.0, "inference_j_per_trial": 2.0, "inference_kj_per_audio_hour": 1.0,
           "inference_co2e_g": 0.1}
    bounds = draws.add_job("a", 0, row, {"train": measured, "embed_test": measured, "score": measured}, 0.5)
    assert bounds["train_energy_kwh_low"] == bounds["train_energy_kwh_high"] == 1.0
    assert bounds["train_co2e_g_low"] == pytest.approx(60.0 * Q_LOW / 50, rel=0.01)
    assert bounds["train_co2e_g_high"] == pytest.approx(60.0 * Q_HIGH / 50, rel=0.01)
    assert bounds["inference_co2e_g_low"] == pytest.approx(0.1 * Q_LOW / 50, rel=0.01)
    assert math.isnan(bounds["embodied_co2e_g_low"])  # an unknown GPU count: no embodied figure, no interval
    unmeasured = {"energy_j": math.nan, "by_sensor": {}, "gap_j": 0.0}
    empty = draws.add_job("b", 0, row, {"train": unmeasured, "embed_test": measured, "score": measured}, 0.5)
    assert math.isnan(empty["train_energy_kwh_low"]) and math.isnan(empty["train_co2e_g_high"])


def test_an_intensity_range_reaches_the_summary_and_its_provenance(tmp_path: Path) -> None:
    config = _exact_sensors(fake_study(tmp_path, seeds=(0,)))
    config["carbon"]["intensity"] = TRIANGLE
    frame = build_summary(tmp_path / "results", config, tmp_path / "study")
    co2e = (frame["train_co2e_g_high"] - frame["train_co2e_g_low"]) / frame["train_co2e_g"]
    assert (co2e > (Q_HIGH - Q_LOW) / 50 * 0.98).all()  # at least the factor's own spread
    provenance = pd.read_csv(tmp_path / "study/provenance.csv").set_index("item")
    assert provenance.loc["grid intensity", "low"] == 20.0 and provenance.loc["grid intensity", "high"] == 80.0
    assert math.isnan(provenance.loc["PUE", "low"])  # no range given: taken as exact, the cell empty


def test_factors_without_ranges_give_co2e_intervals_of_the_energy_alone(tmp_path: Path) -> None:
    config = _exact_sensors(fake_study(tmp_path, seeds=(0,)))
    frame = build_summary(tmp_path / "results", config, tmp_path / "study")
    relative = lambda col: (frame[f"{col}_high"] - frame[f"{col}_low"]) / frame[col]  # noqa: E731
    assert np.allclose(relative("train_co2e_g"), relative("train_energy_kwh"), atol=1e-9)
    assert (frame["embodied_co2e_g_low"] == frame["embodied_co2e_g_high"]).all()  # exact factors, exact hours


def test_embodied_and_pue_ranges_widen_their_own_figures(tmp_path: Path) -> None:
    config = _exact_sensors(fake_study(tmp_path, seeds=(0,)))
    plain = build_summary(tmp_path / "results", config, tmp_path / "plain")
    config["carbon"]["pue"] |= {"low": 1.1, "high": 1.6}
    config["carbon"]["embodied"]["server_kg_per_hour"] |= {"low": 0.028, "high": 0.112}
    frame = build_summary(tmp_path / "results", config, tmp_path / "study")
    assert (frame["embodied_co2e_g_low"] < frame["embodied_co2e_g"]).all()
    assert (frame["embodied_co2e_g"] < frame["embodied_co2e_g_high"]).all()
    # PUE triangular [1.1, 1.2, 1.6]: its 95 % interval is [1.135, 1.529], -5 % / +27 % of the value, on top of
    # the energy's own interval (the same sensor draws: a job's draws do not depend on the factors)
    for col in ("train_co2e_g", "inference_co2e_g"):
        assert (frame[f"{col}_low"] < plain[f"{col}_low"]).all() and (frame[f"{col}_high"] > plain[f"{col}_high"]).all()
        assert (frame[f"{col}_high"] > 1.2 * plain[f"{col}_high"]).all()
    assert np.array_equal(frame["train_energy_kwh_low"], plain["train_energy_kwh_low"])


@pytest.mark.parametrize(("factor", "message"), [
    ({"value": 1.2, "low": 1.3, "high": 1.5, "source": "s"}, r"carbon.pue: low <= value <= high"),
    ({"value": 1.2, "high": 1.1, "source": "s"}, r"carbon.pue: low <= value <= high"),
])
def test_a_range_out_of_order_is_refused_naming_its_key(tmp_path: Path, factor: dict, message: str) -> None:
    config = fake_study(tmp_path, seeds=(0,))
    config["carbon"]["pue"] = factor
    with pytest.raises(UserError, match=message):
        build_summary(tmp_path / "results", config, tmp_path / "study")
    assert not (tmp_path / "study/summary.csv").exists()  # refused before anything is written


def test_a_series_cannot_carry_a_range(tmp_path: Path) -> None:
    from svbench.energy.carbon import Intensity

    (tmp_path / "grid.csv").write_text("timestamp,gco2e_per_kwh\n2023-11-14T00:00:00Z,50\n")
    with pytest.raises(UserError, match=r"carbon.intensity.low/high: a range applies to a constant"):
        Intensity.from_config({"series": str(tmp_path / "grid.csv"), "low": 10, "source": "s"})


def test_architecture_intervals_cover_seeds_energy_and_carbon(tmp_path: Path) -> None:
    config = fake_study(tmp_path)  # two seeds, their training energies 5 J apart
    write_score_replicates(tmp_path, config)
    frame = build_summary(tmp_path / "results", config | {"uncertainty": {"resamples": 200}}, tmp_path / "study")
    by = pd.read_csv(tmp_path / "study/summary_by_arch.csv").set_index("arch")
    for col in ("train_energy_kwh", "train_co2e_g", "inference_j_per_trial", "inference_co2e_g"):
        assert (by[f"{col}_low"] < by[f"{col}_mean"]).all() and (by[f"{col}_mean"] < by[f"{col}_high"]).all(), col
    # the architecture's interval reaches across both seeds' figures
    per_seed = frame.groupby("arch")["train_energy_kwh"]
    assert (by["train_energy_kwh_low"] <= per_seed.min() * 1.001).all()
    shown = (tmp_path / "study/summary_by_arch.html").read_text()
    assert shown.count("[") >= 4 * len(by)
    summary_html = (tmp_path / "study/summary.html").read_text()
    assert "train_energy_kwh_low" not in summary_html and "[" in summary_html  # bounds folded into the cells
    columns = list(pd.read_csv(tmp_path / "study/summary.csv").columns)
    at = columns.index("train_energy_kwh")
    assert columns[at + 1:at + 3] == ["train_energy_kwh_low", "train_energy_kwh_high"]


def test_pareto_and_knee_frequencies_and_differences_from_a_study(tmp_path: Path) -> None:
    config = fake_study(tmp_path)
    # a is cheap and poor, c costly and far better: their difference is real; b and b_back are alike
    write_score_replicates(tmp_path, config, {"a": 0.8, "b": 2.0, "b_back": 2.0, "c": 3.5}, trials=1200,
                           resamples=200)
    build_summary(tmp_path / "results", config | {"uncertainty": {"resamples": 200}}, tmp_path / "study")
    pareto = pd.read_csv(tmp_path / "study/pareto.csv").set_index("arch")
    assert pareto["p_pareto"].between(0, 1).all() and pareto["p_knee"].sum() <= 1 + 1e-9
    assert pareto.loc["a", "p_pareto"] == 1.0  # the cheapest is always on the front
    assert (pareto["resamples"] == 200).all()
    diffs = pd.read_csv(tmp_path / "study/differences.csv")
    c_vs_a = diffs[(diffs["arch"] == "c") & (diffs["against"] == "a")]
    if not len(c_vs_a):  # a is not the reference: c against the reference, a against it
        c_vs_a = diffs[(diffs["arch"] == "a") & (diffs["comparison"] == "against the reference")]
    assert len(diffs) and {"delta_eer_pp_low", "delta_eer_pp_high", "p", "significant", "energy_ratio_low",
                           "energy_ratio_high"} <= set(diffs.columns)
    row = c_vs_a.iloc[0]
    assert row["significant"] and row["p"] < 0.05
    assert row["energy_ratio_low"] <= row["energy_ratio"] <= row["energy_ratio_high"]


def _resampled(values: dict[str, tuple[float, float, float, float]], n: int = 2000, seed: int = 0) -> dict:
    """arch -> (energy, its sd, EER, its sd) as resampled means."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(n)  # speakers shared by all architectures: the EER resamples move together
    return {a: {"train_energy_kwh": rng.normal(c, cs, n), "eer": e + es * shared + 0.01 * rng.standard_normal(n),
                "dcf": np.full(n, 0.5)} for a, (c, cs, e, es) in values.items()}


def test_pareto_frequencies_tell_a_sure_front_from_a_coin_toss() -> None:
    values = {"cheap": (1.0, 0.01, 5.0, 0.5), "dominated": (3.0, 0.01, 6.0, 0.5),
              "twin1": (2.0, 0.01, 4.0, 0.5), "twin2": (2.0, 0.01, 4.0, 0.5)}
    means = pd.DataFrame({"train_energy_kwh": [v[0] for v in values.values()], "eer": [v[2] for v in values.values()],
                          "dcf": 0.5}, index=list(values))
    table = pareto_table(means, _resampled(values), "eer").set_index("arch")
    assert table.loc["cheap", "p_pareto"] == 1.0 and table.loc["dominated", "p_pareto"] == 0.0
    # the twins: each is on the front in about half of the resamples (the one cheaper or better that time)
    assert 0.3 < table.loc["twin1", "p_pareto"] < 0.85 and 0.3 < table.loc["twin2", "p_pareto"] < 0.85
    diffs = differences_table(means, _resampled(values), "eer", "dcf", 0.95).set_index(["comparison", "arch"])
    twins = diffs.loc[("against the reference", "twin2")]  # the reference: twin1, the most accurate (no knee)
    assert diffs.loc[("next on the front", "twin1"), "significant"]  # cheap -> twin1: 1 pp better, shared speakers
    assert not twins["significant"] and twins["delta_eer_pp_low"] < 0 < twins["delta_eer_pp_high"]


def test_trade_off_figures_draw_the_intervals_of_summary_by_arch(tmp_path: Path) -> None:
    """The error bars are each architecture's interval (over seeds and speakers, or draws), asymmetric where
    it is; without ``summary_by_arch.csv`` they fall back to ± sd over seeds."""
    import pandas as pd

    from svbench.study.figures import FIGURES, _means, error_bars, make_figures

    config = fake_study(tmp_path)
    write_score_replicates(tmp_path, config)
    build_summary(tmp_path / "results", config, tmp_path / "study")
    frame = pd.read_csv(tmp_path / "study/summary.csv")
    by_arch = pd.read_csv(tmp_path / "study/summary_by_arch.csv").set_index("arch")
    frame.attrs["by_arch"] = by_arch.reset_index()
    m = _means(frame)
    for col in ("eer_cosine_syn", "train_energy_kwh"):
        bars, what = error_bars(m, col)
        assert "interval" in what
        below = m[f"{col}_mean"] - by_arch.loc[m.index, f"{col}_low"]
        above = by_arch.loc[m.index, f"{col}_high"] - m[f"{col}_mean"]
        assert bars[0] == pytest.approx(below.clip(lower=0).to_numpy())
        assert bars[1] == pytest.approx(above.clip(lower=0).to_numpy())
        assert (bars[0] != bars[1]).any()  # intervals, not a symmetric sd
    plain = _means(pd.read_csv(tmp_path / "study/summary.csv"))
    bars, what = error_bars(plain, "eer_cosine_syn")
    assert "sd" in what and bars[0] == pytest.approx(plain["eer_cosine_syn_sd"].to_numpy())
    made = make_figures(tmp_path / "study/summary.csv", tmp_path / "fig", tmp_path / "study/phases.csv",
                        tmp_path / "results", by_arch=tmp_path / "study/summary_by_arch.csv")
    assert sorted(p.name for p in made) == sorted(FIGURES)
