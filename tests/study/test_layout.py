"""The results layout: one spelling of every path, usable with Snakemake wildcards."""

from __future__ import annotations

from pathlib import Path

import pytest

from svbench.errors import UserError
from svbench.layout import STEPS, Layout


def test_paths_take_wildcards_as_they_are() -> None:
    layout = Layout()
    assert layout.model("{arch}", "{seed}") == "results/models/{arch}/seed{seed}/model.pt"
    assert layout.energy("{step}", "{arch}", "{seed}") == "results/energy/{step}/{arch}/seed{seed}/energy.csv"
    assert layout.log("train", "{arch}", "seed{seed}") == "results/logs/train/{arch}/seed{seed}.log"
    assert layout.scores("a", 1, "vox1_o") == "results/scores/a/seed1/vox1_o.tsv"
    assert layout.step_output("embed", "a", 0) == "results/embeddings/a/seed0/test.npz"
    with pytest.raises(UserError, match="step"):
        layout.step_output("report", "a", 0)


def test_jobs_iterate_the_grid_once_in_table_order(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path))
    jobs = list(layout.jobs(["a", "b"], [0, 1]))
    assert [(j.model.name, j.seed, j.step) for j in jobs[:4]] == [("a", 0, s) for s in STEPS] + [("a", 1, "train")]
    assert len(jobs) == 2 * 2 * len(STEPS)
    assert jobs[0].energy_dir == f"{tmp_path}/energy/train/a/seed0"


def test_fine_tuned_models_follow_their_architecture_with_their_own_steps(tmp_path: Path) -> None:
    from svbench.layout import LARGE_MARGIN, TRAINED, Model

    layout = Layout(str(tmp_path))
    jobs = [(j.model.name, j.seed, j.step) for j in layout.jobs(["a", "b"], [0, 1], large_margin=True)]
    assert jobs[:12] == ([("a", s, step) for s in (0, 1) for step in STEPS]
                         + [("a+lm", s, step) for s in (0, 1) for step in ("finetune", "embed", "score")])
    assert len(jobs) == 24 and ("a+lm", 0, "train") not in jobs
    tuned = Model("a", LARGE_MARGIN)
    assert tuned.name == "a+lm" and Model.named("a+lm") == tuned and Model.named("a") == Model("a", TRAINED)
    assert tuned.made_from == Model("a") and Model("a").made_from is None
    assert tuned.steps == ("finetune", "embed", "score") and Model("a").steps == STEPS
    with pytest.raises(ValueError, match="stage"):
        Model("a", "distilled")
    assert layout.step_output("finetune", "a+lm", 0) == f"{tmp_path}/models/a+lm/seed0/model.pt"


def test_the_root_comes_from_a_declared_input() -> None:
    layout = Layout()
    assert layout.root_of("/x/results/corpus/test.tsv", layout.manifest("test")) == "/x/results"
    assert layout.root_of("results/corpus/test.tsv", layout.manifest("test")) == "results"
    assert Layout.of(Path("/y")).root == "/y"
    with pytest.raises(UserError, match="not a path ending"):
        layout.root_of("/x/other.tsv", layout.manifest("test"))


def test_every_work_job_has_its_product_and_a_wrong_one_is_named() -> None:
    """The energy of a data-preparation, bootstrap or analysis job is joined once its product exists."""
    import pytest

    from svbench.errors import UserError
    from svbench.layout import WORK_STEPS, Layout

    layout = Layout("r")
    jobs = {layout.corpus_job("synthetic"): ("corpus", "synthetic", layout.manifest("test")),
            layout.convert_job("00003"): ("convert", "batch00003", layout.convert_report("00003")),
            layout.features_job("train", "0002"): ("features", "train-shard0002",
                                                   layout.feature_shard("train", "0002", "index")),
            layout.intervals_job("A+lm", "1"): ("intervals", "A+lm-seed1", layout.replicates("A+lm", "1")),
            layout.study_job("summary"): ("study", "summary", layout.study("summary.csv"))}
    assert {step for step, _, _ in jobs.values()} == set(WORK_STEPS)
    for job, (step, name, product) in jobs.items():
        assert (job.step, job.name, job.output) == (step, name, product)
        assert job.energy == layout.work_energy(step, name) == f"r/energy/{step}/{name}/energy.csv"
    with pytest.raises(UserError, match="no measured study job 'nope'"):
        layout.study_job("nope")
