"""The study's readers and damaged inputs (issue 25, class 1): every damage to a file the study reads is one line
naming the file, exit 2, through the CLI (``svbench study summary``, ``study report``, ``predict``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.study import fake_study, write_score_replicates

from svbench.layout import Layout

TIMEOUT = 300


def _damage(path: Path, how: str) -> None:
    text = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(text[: len(text) // 2])
    elif how == "not json":
        path.write_text("{not json")
    elif how == "a list":
        path.write_text("[1, 2]")
    elif how == "header only":
        path.write_bytes(text.splitlines(keepends=True)[0])
    elif how.startswith("without "):  # a CSV without one column
        import pandas as pd

        pd.read_csv(path).drop(columns=[how.removeprefix("without ")]).to_csv(path, index=False)
    elif how == "non-numeric energy":
        import pandas as pd

        frame = pd.read_csv(path)
        frame["energy_j"] = frame["energy_j"].astype(object)
        frame.loc[0, "energy_j"] = "abc"
        frame.to_csv(path, index=False)
    else:
        raise AssertionError(how)


SUMMARY_CASES = [  # (file, damage, what the message says besides the file)
    ("metrics", "empty", "is empty"), ("metrics", "truncated", "not valid JSON"), ("metrics", "a list", "JSON object"),
    ("spec", "not json", "not valid JSON"),
    ("replicates", "truncated", "damaged speaker-bootstrap replicates"),
    ("replicates", "empty", "damaged speaker-bootstrap replicates"),
    ("intervals", "truncated", "not valid JSON"),
    ("train energy", "empty", "is empty"), ("train energy", "without coverage", "no column 'coverage'"),
    ("train energy", "without component", "no column 'component'"),
    ("train energy", "without energy_j", "no column 'energy_j'"),
    ("train energy", "non-numeric energy", "not numbers"),
    ("score energy", "truncated", "energy table"),
]


def _path(layout: Layout, name: str) -> Path:
    return Path({"metrics": layout.metrics("a", 0), "spec": layout.spec("a", 0),
                 "replicates": layout.replicates("a", 0), "intervals": layout.intervals("a", 0),
                 "train energy": layout.energy("train", "a", 0), "score energy": layout.energy("score", "a", 0)}[name])


@pytest.mark.parametrize("name, how, said", SUMMARY_CASES, ids=[f"{n}: {h}" for n, h, _ in SUMMARY_CASES])
def test_a_damaged_input_of_the_summary_is_one_line_naming_it(tmp_path, name, how, said):
    config = fake_study(tmp_path, seeds=(0,)) | {"uncertainty": {"resamples": 20}}
    write_score_replicates(tmp_path, config, trials=100, resamples=20)
    layout = Layout(str(tmp_path / "results"))
    if name == "intervals":
        Path(layout.intervals("a", 0)).write_text(json.dumps({"syn": {}}))
    path = _path(layout, name)
    _damage(path, how)
    run = subprocess.run([sys.executable, "-m", "svbench.cli", "study", "summary", "--results", layout.root,
                          "--config", json.dumps(config), "--out", str(tmp_path / "study")],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 2, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert "Traceback" not in run.stderr and str(path) in last and said in last, last


@pytest.mark.parametrize("command", ["report", "predict", "figures"])
@pytest.mark.parametrize("how, said", [("empty", "is empty"), ("without arch", "no column 'arch'"),
                                       ("without train_energy_kwh", "no column 'train_energy_kwh'"),
                                       ("header only", "no row")])
def test_a_damaged_summary_is_one_line_naming_it(tmp_path, command, how, said):
    config = fake_study(tmp_path, seeds=(0,)) | {"uncertainty": {"resamples": 20}}
    write_score_replicates(tmp_path, config, trials=100, resamples=20)
    from svbench.study.summary import build_summary

    build_summary(tmp_path / "results", config, tmp_path / "study")
    summary = tmp_path / "study" / "summary.csv"
    _damage(summary, how)
    args = {"report": ["study", "report", "--summary", str(summary), "--out", str(tmp_path / "study.html")],
            "predict": ["predict", "--summary", str(summary), "--arch", "ResNet34", "--epochs", "2", "--samples",
                        "100"],
            "figures": ["study", "figures", "--summary", str(summary), "--results", str(tmp_path / "results"),
                        "--out", str(tmp_path / "figures")]}[command]
    run = subprocess.run([sys.executable, "-m", "svbench.cli", *args], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert run.returncode == 2, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert "Traceback" not in run.stderr and str(summary) in last and said in last, last


@pytest.mark.parametrize("drop, said", [("carbon", "carbon: missing"), ("carbon.pue", "carbon.pue: missing"),
                                        ("carbon.intensity", "carbon.intensity: missing"),
                                        ("grid", "config key grid: the grid is empty")])
def test_a_study_config_without_a_required_key_names_it(tmp_path, drop, said):
    config = fake_study(tmp_path, seeds=(0,)) | {"uncertainty": {"resamples": 20}}
    write_score_replicates(tmp_path, config, trials=100, resamples=20)
    block, _, key = drop.partition(".")
    if key:
        del config[block][key]
    else:
        del config[block]
    run = subprocess.run([sys.executable, "-m", "svbench.cli", "study", "summary", "--results",
                          str(tmp_path / "results"), "--config", json.dumps(config), "--out", str(tmp_path / "study")],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert said in run.stderr.strip().splitlines()[-1]


SCORE_CASES = [("blank score", lambda ln: ln.replace("\t0.5", "\t"), ":2: column 'cosine' must be a finite number"),
               ("abc score", lambda ln: ln.replace("\t0.5", "\tabc"), ":2: column 'cosine' must be a finite number"),
               ("label 2", lambda ln: "2" + ln[1:], ":2: column 'label' must be 0 or 1"),
               ("nan score", lambda ln: ln.replace("\t0.5", "\tnan"), ":2: column 'cosine' must be a finite number")]


@pytest.mark.parametrize("case, change, said", SCORE_CASES, ids=[c[0] for c in SCORE_CASES])
def test_a_damaged_score_file_names_its_line(tmp_path, case, change, said):
    manifest = tmp_path / "test.tsv"
    manifest.write_text("utt\tspeaker\tpath\tseconds\n" + "".join(f"u{k}\ts{k % 3}\tu{k}.wav\t1.0\n" for k in range(6)))
    lines = ["label\tenroll\ttest\tcosine"] + [f"{int(k % 3 == 0)}\tu{k}\tu{(k + 3) % 6}\t0.5" for k in range(6)]
    good, bad = tmp_path / "good list.tsv", tmp_path / "bad list.tsv"
    good.write_text("\n".join(lines) + "\n")
    bad.write_text("\n".join([lines[0], change(lines[1]), *lines[2:]]) + "\n")
    run = subprocess.run([sys.executable, "-m", "svbench.cli", "intervals", "--scores", f"a={good}", f"b={bad}",
                          "--manifest", str(manifest), "--settings", '{"resamples": 10}', "--out",
                          str(tmp_path / "i.npz")], capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"{bad}{said}" in run.stderr.strip().splitlines()[-1], run.stderr


def test_a_score_list_of_one_class_names_its_file(tmp_path):
    manifest = tmp_path / "test.tsv"
    manifest.write_text("utt\tspeaker\tpath\tseconds\n" + "".join(f"u{k}\ts{k % 3}\tu{k}.wav\t1.0\n" for k in range(6)))
    targets = tmp_path / "targets only.tsv"
    targets.write_text("label\tenroll\ttest\tcosine\n" + "".join(f"1\tu{k}\tu{k}\t0.{k}\n" for k in range(6)))
    run = subprocess.run([sys.executable, "-m", "svbench.cli", "intervals", "--scores", f"x={targets}",
                          "--manifest", str(manifest), "--out", str(tmp_path / "i.npz")], capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert str(targets) in run.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("table, how, said", [("pareto", "without p_pareto", "no column 'p_pareto'"),
                                              ("differences", "without delta_eer_pp", "no column 'delta_eer_pp'"),
                                              ("pareto", "not csv", "not a readable CSV"),
                                              ("differences", "abc", "must be a number")])
def test_damaged_findings_tables_name_the_file(tmp_path, table, how, said):
    config = fake_study(tmp_path, seeds=(0, 1)) | {"uncertainty": {"resamples": 20}}
    write_score_replicates(tmp_path, config, trials=100, resamples=20)
    from svbench.study.summary import build_summary

    build_summary(tmp_path / "results", config, tmp_path / "study")
    path = tmp_path / "study" / f"{table}.csv"
    if how == "not csv":
        path.write_bytes(b'"unclosed\\n' + bytes(range(128, 256)))
    elif how == "abc":
        import pandas as pd

        frame = pd.read_csv(path)
        assert len(frame), "the fake study has differences"
        frame["delta_eer_pp"] = frame["delta_eer_pp"].astype(object)
        frame.loc[0, "delta_eer_pp"] = "abc"
        frame.to_csv(path, index=False)
    else:
        _damage(path, how)
    run = subprocess.run([sys.executable, "-m", "svbench.cli", "study", "report", "--summary",
                          str(tmp_path / "study" / "summary.csv"), "--out", str(tmp_path / "study.html"),
                          "--pareto", str(tmp_path / "study" / "pareto.csv"), "--differences",
                          str(tmp_path / "study" / "differences.csv")], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert str(path) in last and said in last, last


def test_an_architecture_without_its_eer_is_never_ranked(tmp_path):
    """metrics.json of `{}` (issue 25): the findings called that architecture Pareto-optimal in 85 % of the
    resampled studies, from its replicates alone. Now it is a gap: no frequency, not on any front."""
    import pandas as pd

    from svbench.study.findings import Findings
    from svbench.study.summary import build_summary

    config = fake_study(tmp_path, seeds=(0, 1)) | {"uncertainty": {"resamples": 50}}
    write_score_replicates(tmp_path, config, trials=200, resamples=50)
    layout = Layout(str(tmp_path / "results"))
    for seed in (0, 1):
        Path(layout.metrics("a", seed)).write_text("{}")
    build_summary(layout.root, config, tmp_path / "study")
    pareto = pd.read_csv(tmp_path / "study" / "pareto.csv").set_index("arch")
    assert math.isnan(pareto.loc["a", "p_pareto"]) and not pareto.loc["a", "pareto_optimal"]
    assert pareto.drop(index="a")["p_pareto"].notna().all()  # the others still ranked
    lines = Findings.read(tmp_path / "study" / "pareto.csv", tmp_path / "study" / "differences.csv").frequencies()
    (line,) = [t for t in lines if t.startswith("a:")]
    assert "not ranked" in line and "EER" in line and "Pareto-optimal" not in line, lines  # a labelled gap


def test_an_architecture_without_replicates_is_a_labelled_gap(tmp_path):
    """A missing intervals.npz dropped its architecture from the Pareto list without a word (issue 25, class 1):
    the findings now name it as not ranked, with the reason, and never rank it."""
    import pandas as pd

    from svbench.study.findings import Findings
    from svbench.study.summary import build_summary

    config = fake_study(tmp_path, seeds=(0, 1)) | {"uncertainty": {"resamples": 50}}
    write_score_replicates(tmp_path, config, trials=200, resamples=50)
    layout = Layout(str(tmp_path / "results"))
    Path(layout.replicates("b", 1)).unlink()
    build_summary(layout.root, config, tmp_path / "study")
    pareto = pd.read_csv(tmp_path / "study" / "pareto.csv").set_index("arch")
    assert math.isnan(pareto.loc["b", "p_pareto"])
    assert "replicates" in pareto.loc["b", "not_ranked"] and pareto.drop(index="b")["not_ranked"].isna().all()
    lines = Findings.read(tmp_path / "study" / "pareto.csv", tmp_path / "study" / "differences.csv").frequencies()
    (line,) = [t for t in lines if t.startswith("b:")]
    assert "not ranked" in line and "replicates" in line, lines
