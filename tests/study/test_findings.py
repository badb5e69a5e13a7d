"""The findings page and the report's opening page state only what the intervals support (issue 15)."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from docutils.core import publish_parts
from fakes.study import fake_study, write_score_replicates
from jinja2 import Environment

from svbench.study.findings import Findings, comparison_text
from svbench.study.summary import build_summary


def _rendered(rst: str) -> str:
    """What Snakemake makes of a workflow-level report description: Jinja, then docutils (errors raise)."""
    text = Environment().from_string(rst).render()
    return publish_parts(text, writer="html", settings_overrides={"halt_level": 2})["html_body"]


def test_a_comparison_reads_with_its_numbers() -> None:
    row = {"arch": "B", "against": "A", "delta_eer_pp": 0.05, "delta_eer_pp_low": -0.02, "delta_eer_pp_high": 0.12,
           "p": 0.3, "significant": False, "energy_ratio": 2.1, "energy_ratio_low": 1.9, "energy_ratio_high": 2.3}
    assert comparison_text(row) == ("B vs A: ΔEER +0.05 pp [−0.02, +0.12], not significant, for 2.1× [1.9, 2.3] "
                                    "the training energy")
    assert "significant (p < 0.005)" in comparison_text(row | {"significant": True, "p": 0.0}, resamples=200)
    no_interval = row | {"significant": float("nan"), "delta_eer_pp_low": float("nan")}
    assert "not a finding" in comparison_text(no_interval)


def test_the_study_page_and_the_opening_page_state_only_supported_differences(tmp_path: Path) -> None:
    config = fake_study(tmp_path)
    # a is cheap and poor, c costly and far better; b and b_back are alike
    write_score_replicates(tmp_path, config, {"a": 0.8, "b": 2.0, "b_back": 2.0, "c": 3.5}, trials=1200,
                           resamples=200)
    build_summary(tmp_path / "results", config | {"uncertainty": {"resamples": 200}}, tmp_path / "study")
    study = tmp_path / "study"
    out = tmp_path / "out dir"
    out.mkdir()
    subprocess.run([sys.executable, "-m", "svbench.cli", "study", "report", "--summary", str(study / "summary.csv"),
                    "--pareto", str(study / "pareto.csv"), "--differences", str(study / "differences.csv"),
                    "--out", str(out / "study.html"), "--findings-rst", str(out / "findings.rst"),
                    "--model-json", str(out / "model.json"), "--model-csv", str(out / "model.csv")], check=True)
    diffs = pd.read_csv(study / "differences.csv")
    significant = diffs[diffs["significant"]]
    unsure = diffs[~diffs["significant"]]
    assert len(significant) and len(unsure)  # the fake has both kinds
    page = (out / "study.html").read_text()
    supported, _, rest = page.partition("Differences the data cannot tell apart")
    for row in significant.itertuples():
        assert f"{row.arch} vs {row.against}: ΔEER" in supported or f"{row.against} vs {row.arch}: ΔEER" in supported
    for row in unsure.itertuples():
        line = f"{row.arch} vs {row.against}: ΔEER"
        assert line not in supported.split("Differences their intervals support")[1] and line in rest
        assert "not significant" in rest
    assert "Pareto-optimal in" in page and "resampled studies" in page
    html = _rendered((out / "findings.rst").read_text())
    assert "b_back vs b" in html and "not significant" in html  # underscores escaped, not links
    assert "What the study shows" in html and "ΔEER" in html


def test_without_intervals_no_difference_is_stated_as_a_finding(tmp_path: Path) -> None:
    config = fake_study(tmp_path)  # no speaker-bootstrap replicates: point estimates only
    build_summary(tmp_path / "results", config, tmp_path / "study")
    f = Findings.read(tmp_path / "study/pareto.csv", tmp_path / "study/differences.csv")
    assert not f.supported
    html = _rendered(f.rst("What the study shows", "4 architectures"))
    assert "No Pareto or knee frequencies were made" in html or "not a finding" in html
    # the reason stated is the one that held: compared, but without intervals (issue 25, class 8)
    assert "no compared difference has an interval" in html and "none has an interval that excludes" not in html
    empty, blank = tmp_path / "empty.csv", tmp_path / "blank.csv"
    empty.write_text("")
    blank.write_text("\n")  # what pandas writes for a table without columns: a one-architecture study's differences
    page = _rendered(Findings.read(empty, blank).rst("t", "c"))  # a study with nothing measured still gets its page
    assert "no two architectures were compared" in page


def test_an_empty_pareto_table_says_so_without_denying_the_differences(tmp_path: Path) -> None:
    """An empty pareto.csv beside differences that have intervals: the page said "No intervals were made" above
    them (issue 25). Now it says what is missing, and the supported differences stand."""
    config = fake_study(tmp_path) | {"uncertainty": {"resamples": 200}}
    write_score_replicates(tmp_path, config, {"a": 1.0, "b": 2.0, "b_back": 2.0, "c": 3.0}, trials=1200,
                           resamples=200)
    build_summary(tmp_path / "results", config, tmp_path / "study")
    (tmp_path / "study/pareto.csv").write_text("")
    f = Findings.read(tmp_path / "study/pareto.csv", tmp_path / "study/differences.csv")
    assert f.supported
    page = _rendered(f.rst("t", "c"))
    assert "No intervals were made" not in page and "No Pareto or knee frequencies were made" in page


@pytest.mark.parametrize("name", ["a_", "x*y", "back`tick|bar"])
def test_names_with_markup_characters_stay_text(name: str) -> None:
    pareto = pd.DataFrame([{"arch": name, "p_pareto": 1.0, "p_knee": 0.0, "pareto_optimal": True, "knee": False,
                            "resamples": 10}])
    html = _rendered(Findings.of(pareto, pd.DataFrame()).rst("t", json.dumps(name)))
    assert name in html.replace("&quot;", '"')


def test_a_p_value_is_resolved_by_its_own_comparisons_resamples() -> None:
    """The "p < 1/resamples" of a comparison used the Pareto table's count (issue 25, class 8): a comparison
    made of 20 resamples said "p < 0.001" because the Pareto frequencies had 1000."""
    pareto = pd.DataFrame([{"arch": a, "p_pareto": 0.5, "p_knee": 0.0, "pareto_optimal": True, "knee": False,
                            "resamples": 1000} for a in ("A", "B")])
    differences = pd.DataFrame([{"comparison": "against the reference", "arch": "B", "against": "A",
                                 "delta_eer_pp": -1.0, "delta_eer_pp_low": -1.5, "delta_eer_pp_high": -0.5, "p": 0.0,
                                 "significant": True, "energy_ratio": 2.0, "energy_ratio_low": 1.8,
                                 "energy_ratio_high": 2.2, "resamples": 20}])
    (line,) = Findings.of(pareto, differences).supported
    assert "(p < 0.05)" in line, line


@pytest.mark.parametrize("seeds", [(0,), (0, 1)])
def test_the_resampled_studies_are_described_by_what_was_drawn(tmp_path: Path, seeds: tuple[int, ...]) -> None:
    """The findings said "seeds, evaluation speakers, sensor errors and carbon factors drawn again" whatever was
    drawn (issue 25, class 8): the Pareto front is EER against training kWh, which no carbon factor moves, and one
    seed per architecture is not a draw of seeds."""
    config = fake_study(tmp_path, seeds=seeds) | {"uncertainty": {"resamples": 50}}
    write_score_replicates(tmp_path, config, trials=200, resamples=50)
    build_summary(tmp_path / "results", config, tmp_path / "study")
    f = Findings.read(tmp_path / "study/pareto.csv", tmp_path / "study/differences.csv")
    (sentence,) = [p for p in f.html().split("<p>") if "resampled studies" in p]
    assert "carbon" not in sentence and "evaluation speakers" in sentence and "sensor" in sentence, sentence
    assert ("seeds" in sentence) == (len(seeds) > 1), sentence
