"""Bad input reaches the user as one line naming the key or file: `svbench train --recipe`, `svbench arch list`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from support import REPO

from svbench.cli import main
from svbench.errors import UserError
from svbench.training import Recipe

TINY_ARCH = json.dumps({"name": "tiny", "block": "basic", "stages": [1, 1, 1, 1], "width": 4, "embedding": 32})


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `svbench ARGV`, run in this process."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.mark.parametrize(("recipe", "message"), [
    ({"batch_size": 0}, "training.batch_size: must be an integer >= 1, got 0"),
    ({"batch_size": -4}, "training.batch_size: must be an integer >= 1, got -4"),
    ({"epochs": "ten"}, "training.epochs: must be an integer >= 1, got 'ten'"),
    ({"epochs": True}, "training.epochs: must be an integer >= 1, got True"),  # bool is not an int here
    ({"epochs": 2.5}, "training.epochs: must be an integer >= 1, got 2.5"),
    ({"lr": "fast"}, "training.lr: must be a number > 0, got 'fast'"),
    ({"lr": 0}, "training.lr: must be a number > 0, got 0"),
    ({"final_lr": float("nan")}, "training.final_lr: must be a number > 0, got nan"),
    ({"aug_prob": 1.5}, "training.aug_prob: must be a number >= 0 and <= 1, got 1.5"),
    ({"samples_per_epoch": 0}, "training.samples_per_epoch: must be an integer >= 1 or null, got 0"),
    ({"threads": 0}, "training.threads: must be an integer >= 1, got 0"),
    ({"nesterov": "yes"}, "training.nesterov: must be true or false, got 'yes'"),
    ({"musan": 3}, "training.musan: must be a string or null, got 3"),
    ({"amp": "fp8"}, "training.amp: must be one of auto, bf16, fp16, off, got 'fp8'"),
    ({"device": "gpu0"}, "training.device: must be a string matching ^(auto|cpu|mps|cuda(:[0-9]+)?)$, got 'gpu0'"),
    ({"num_workers": -1}, "training.num_workers: must be an integer >= 0, got -1"),
    ({"checkpoint_minutes": -1}, "training.checkpoint_minutes: must be a number >= 0, got -1"),
    ({"epoch": 3}, "training.epoch: unknown training option"),
])
def test_bad_recipe_is_one_line_before_anything_is_built(recipe: dict, message: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    # the features and manifest do not exist: the recipe must be refused before they are read
    code, _, err = run_cli(["train", "--features", str(tmp_path / "nope"), "--manifest", str(tmp_path / "nope.tsv"),
                            "--arch", TINY_ARCH, "--recipe", json.dumps(recipe), "--out", str(out)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"svbench: error: {message}"), err
    assert not out.exists()


def test_recipe_errors_are_user_errors_also_on_direct_construction() -> None:
    with pytest.raises(UserError, match=r"training\.batch_size: must be an integer >= 1, got 0"):
        Recipe(batch_size=0)
    with pytest.raises(UserError, match=r"training\.margin: must be a number >= 0"):
        dataclasses.replace(Recipe(), margin=-0.1)
    assert Recipe.from_dict({"lr": 1}).lr == 1.0 and isinstance(Recipe.from_dict({"lr": 1}).lr, float)


def test_the_recipe_refuses_what_the_schema_refuses() -> None:
    """Each bound the schema states for a training key, crossed, is a UserError naming the key."""
    schema = yaml.safe_load((REPO / "svbench/schemas/config.schema.yaml").read_text())["properties"]["training"]
    crossings = {"minimum": lambda b, integer: b - 1 if integer else b - 0.5, "exclusiveMinimum": lambda b, _: b,
                 "maximum": lambda b, integer: b + 1 if integer else b + 0.5}
    tried = 0
    for key, entry in schema["properties"].items():
        integer = "integer" in entry["type"]
        bad = [cross(entry[word], integer) for word, cross in crossings.items() if word in entry]
        bad += ["nope"] if "enum" in entry else []
        bad += ["cuda:x"] if "pattern" in entry else []
        for value in bad:
            with pytest.raises(UserError, match=rf"^training\.{key}: must be"):
                Recipe.from_dict({key: value})
            tried += 1
    assert tried >= 20  # every bound of the block is crossed (24 today)


def test_arch_list_on_malformed_yaml_names_the_file_and_line(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [0]\ngrid: [a, b\n  c: d\n")
    code, _, err = run_cli(["arch", "list", "--config", str(bad)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"svbench: error: {bad}:3:"), err
    assert "<unicode string>" not in err


@pytest.mark.parametrize("kind", ["directory", "missing", "not a mapping"])
def test_arch_list_on_a_bad_path_is_one_line(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "not a mapping":
        path.write_text("- grid\n")
    code, _, err = run_cli(["arch", "list", "--config", str(path)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"svbench: error: {path}:"), err
    assert "Errno" not in err


def test_arch_list_grid_errors_are_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from svbench.models import ArchSpec
    from svbench.study.grid import specs_from_grid

    with pytest.raises(UserError, match=r"grid\[1\]\.name: 'a' is already used"):
        specs_from_grid([{"preset": "ResNet18", "name": "a"}, {"preset": "ResNet34", "name": "a"}])
    with pytest.raises(UserError, match="grid: the grid is empty"):
        specs_from_grid([])
    with pytest.raises(UserError, match=r"x\.stages"):
        ArchSpec.from_dict({"name": "a", "block": "basic", "stages": [1]}, where="x")
    path = tmp_path / "config.yaml"
    path.write_text("grid:\n  - {preset: ResNet34, width: 0}\n")
    code, _, err = run_cli(["arch", "list", "--config", str(path)], capsys)
    assert code == 2 and f"{path}: grid[0].width" in err, err
    code, _, err = run_cli(["arch", "list", "--config", str(REPO / "config/config.yaml"), "--frames", "0"], capsys)
    assert code == 2 and "--frames" in err, err
