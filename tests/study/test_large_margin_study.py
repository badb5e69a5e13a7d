"""A study with large-margin fine-tuning (issue 17): each fine-tuned model is a row of its own, its training
energy its backbone's plus its fine-tuning's, and what the fine-tuning buys is a paired difference."""

import json
from pathlib import Path

import pandas as pd
import pytest
from fakes.study import LM_SHARE, fake_study, write_score_replicates

from svbench.energy.join import read_energy
from svbench.layout import Layout
from svbench.study.analysis import fit_energy_model
from svbench.study.findings import Findings
from svbench.study.summary import build_summary, energy_of


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, pd.DataFrame]:
    root = tmp_path_factory.mktemp("lm")
    config = fake_study(root, large_margin=True) | {"energy": {"rapl": {"tolerance": 0.05}},
                                                     "uncertainty": {"resamples": 300}}
    # fine-tuning helps a lot on a, not at all on c
    separation = {"a": 1.0, "a+lm": 2.5, "b": 2.0, "b+lm": 2.2, "b_back": 2.0, "b_back+lm": 2.2, "c": 3.0,
                  "c+lm": 3.0}
    write_score_replicates(root, config, separation, trials=1200, resamples=300)
    frame = build_summary(root / "results", config, root / "study")
    return root, config, frame


def _job_kwh(root: Path, step: str, model: str, seed: int) -> float:
    layout = Layout(str(root / "results"))
    return energy_of(read_energy(Path(layout.energy(step, model, seed))), "job")["energy_j"] / 3.6e6


def test_a_fine_tuned_model_is_its_own_row_trained_by_both_jobs(study) -> None:
    root, _, frame = study
    assert list(frame["arch"][:4]) == ["a", "a", "a+lm", "a+lm"] and len(frame) == 16
    rows = frame.set_index(["arch", "seed"])
    for seed in (0, 1):
        tuned = rows.loc[("a+lm", seed)]
        base, extra = _job_kwh(root, "train", "a", seed), _job_kwh(root, "finetune", "a+lm", seed)
        assert extra == pytest.approx(LM_SHARE * base, rel=0.05)
        assert tuned["train_energy_kwh"] == pytest.approx(base + extra, rel=1e-9)
        assert tuned["finetune_energy_kwh"] == pytest.approx(extra, rel=1e-9)
        assert (tuned["backbone"], tuned["stage"], tuned["epochs"], tuned["finetune_epochs"]) == (
            "a", "large-margin fine-tuned", 2, 1)
        assert rows.loc[("a", seed), "stage"] == "trained" and pd.isna(rows.loc[("a", seed), "finetune_energy_kwh"])
        assert tuned["train_co2e_g"] > rows.loc[("a", seed), "train_co2e_g"]
    carbon = pd.read_csv(root / "study/carbon.csv").set_index(["arch", "seed"])
    assert carbon.loc[("a+lm", 0), "finetune_energy_kwh"] == pytest.approx(_job_kwh(root, "finetune", "a+lm", 0))
    phases = pd.read_csv(root / "study/phases.csv")
    assert set(phases.loc[phases["arch"] == "a+lm", "step"]) == {"finetune", "embed", "score"}
    # the energy model is fitted on the trained models: fine-tuning is a second recipe
    assert fit_energy_model(frame).archs == 4


def test_what_fine_tuning_adds_and_buys_is_paired_with_its_backbone(study) -> None:
    root, _, frame = study
    diffs = pd.read_csv(root / "study/differences.csv")
    tuning = diffs[diffs["comparison"] == "large-margin fine-tuning"].set_index("arch")
    assert sorted(tuning.index) == ["a+lm", "b+lm", "b_back+lm", "c+lm"]
    assert (tuning["against"] == [a.removesuffix("+lm") for a in tuning.index]).all()
    a = tuning.loc["a+lm"]
    extra = frame[frame["arch"] == "a+lm"]["finetune_energy_kwh"].mean()
    assert a["extra_train_kwh"] == pytest.approx(extra, rel=1e-9)
    # the backbone's training is the same draws in both rows: the extra energy's interval is the fine-tuning's
    # own (5 % sensor tolerance, its coverage gaps), not the sum of two trainings' errors
    assert 0.85 * extra < a["extra_train_kwh_low"] <= 1.01 * extra < a["extra_train_kwh_high"]
    assert a["extra_train_kwh_high"] - a["extra_train_kwh_low"] < 0.3 * extra
    assert a["significant"] and a["delta_eer_pp_high"] < 0  # a clear gain
    assert a["eer_pp_per_extra_kwh"] == pytest.approx(-a["delta_eer_pp"] / a["extra_train_kwh"], rel=1e-9)
    assert 0 < a["eer_pp_per_extra_kwh_low"] < a["eer_pp_per_extra_kwh"] < a["eer_pp_per_extra_kwh_high"]
    c = tuning.loc["c+lm"]
    assert not c["significant"] and c["eer_pp_per_extra_kwh_low"] < 0 < c["eer_pp_per_extra_kwh_high"]
    findings = Findings.read(root / "study/pareto.csv", root / "study/differences.csv")
    line = next(t for t in findings.supported if t.startswith("large-margin fine-tuning: a+lm vs a"))
    assert "kWh" in line and "EER points per extra kWh" in line


def test_the_pairing_does_not_depend_on_the_order_of_the_rows(study) -> None:
    from svbench.study.summary import summary_with_draws
    from svbench.study.tradeoff import tradeoff_tables
    from svbench.uncertainty.score_intervals import UncertaintySettings

    root, config, _ = study
    rows, draws = summary_with_draws(root / "results", config)
    frame = pd.DataFrame(rows)
    settings = UncertaintySettings.from_config(config["uncertainty"])
    layout = Layout(str(root / "results"))
    tuned_first = pd.concat([frame[frame["stage"] != "trained"], frame[frame["stage"] == "trained"]])
    columns = ["arch", "extra_train_kwh_low", "extra_train_kwh_high", "delta_eer_pp_low", "delta_eer_pp_high"]

    def tuning(table: pd.DataFrame) -> pd.DataFrame:
        rows = table[table["comparison"] == "large-margin fine-tuning"][columns]
        return rows.sort_values("arch").reset_index(drop=True)

    pd.testing.assert_frame_equal(tuning(tradeoff_tables(layout, frame, draws, settings)[1]),
                                  tuning(tradeoff_tables(layout, tuned_first, draws, settings)[1]))


def test_the_figures_and_report_show_the_fine_tuned_models(study, tmp_path: Path) -> None:
    from svbench.study.figures import FIGURES, make_figures
    from svbench.study.report import write_study_report

    root, _, _ = study
    made = make_figures(root / "study/summary.csv", tmp_path / "fig", root / "study/phases.csv", root / "results",
                        by_arch=root / "study/summary_by_arch.csv")
    assert sorted(p.name for p in made) == sorted(FIGURES)
    write_study_report(root / "study/summary.csv", tmp_path / "study.html", pareto=root / "study/pareto.csv",
                       differences=root / "study/differences.csv", findings_rst=tmp_path / "findings.rst")
    page = (tmp_path / "findings.rst").read_text()
    assert "4 architectures, each also after large-margin fine-tuning" in page
    by_arch = pd.read_csv(root / "study/summary_by_arch.csv")
    assert list(by_arch["arch"]) == ["a", "a+lm", "b", "b+lm", "b_back", "b_back+lm", "c", "c+lm"]
    assert json.loads((root / "results/models/a+lm/seed0/spec.json").read_text())["epochs"] == 1


def test_without_the_backbones_training_energy_the_fine_tuned_total_is_empty(tmp_path: Path) -> None:
    config = fake_study(tmp_path, seeds=(0,), large_margin=True)
    Path(Layout(str(tmp_path / "results")).energy("train", "a", 0)).unlink()  # its join never ran
    frame = build_summary(tmp_path / "results", config, tmp_path / "study").set_index("arch")
    assert pd.isna(frame.loc["a", "train_energy_kwh"]) and pd.isna(frame.loc["a+lm", "train_energy_kwh"])
    assert frame.loc["a+lm", "finetune_energy_kwh"] > 0  # the fine-tuning alone is still known
    assert frame.loc["a+lm", "train_energy_basis"] == "not measured"
    assert frame.loc["b+lm", "train_energy_kwh"] > frame.loc["b", "train_energy_kwh"]
