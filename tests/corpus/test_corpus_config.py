"""The typed corpus config: the schema's `corpus` section agrees with the dataclasses; errors name the key."""

from __future__ import annotations

import json

import pytest
from support import assert_schema_matches

from svbench.cli import main
from svbench.corpus.config import ConvertConfig, CorpusConfig, SyntheticConfig, VoxcelebConfig
from svbench.errors import UserError


@pytest.mark.parametrize(("block", "section"), [
    (CorpusConfig, "corpus"),
    (SyntheticConfig, "corpus.synthetic"),
    (VoxcelebConfig, "corpus.voxceleb"),
    (ConvertConfig, "corpus.voxceleb.convert"),
])
def test_each_field_is_its_own_schema_key_with_its_type(block: type, section: str) -> None:
    assert_schema_matches(block, section)


def test_from_dict_fills_defaults_and_nested_blocks() -> None:
    config = CorpusConfig.from_dict({"kind": "voxceleb", "voxceleb": {"convert": {"threads": 2},
                                                                       "trials": {"vox1_o": "o.txt"}}})
    assert config.voxceleb.convert == ConvertConfig(threads=2)
    assert config.voxceleb.trials == {"vox1_o": "o.txt"} and config.synthetic == SyntheticConfig()
    assert SyntheticConfig.from_dict({"min_seconds": 1}).min_seconds == 1.0


@pytest.mark.parametrize(("options", "message"), [
    ({"synthetic": {"trials": 1}}, r"corpus\.synthetic\.trials: must be an integer >= 2, got 1"),
    ({"synthetic": {"trial": 10}}, r"corpus\.synthetic\.trial: unknown option"),
    ({"synthetic": {"min_seconds": "long"}}, r"corpus\.synthetic\.min_seconds: must be a number > 0"),
    ({"kind": "librispeech"}, r"corpus\.kind: must be one of synthetic, voxceleb"),
    ({"voxceleb": {"convert": {"batch_size": 0}}}, r"corpus\.voxceleb\.convert\.batch_size: must be an integer"),
    ({"voxceleb": {"trials": {"vox1_o": ""}}}, r"corpus\.voxceleb\.trials\.vox1_o: must be a non-empty path"),
    ({"voxceleb": []}, r"corpus\.voxceleb: must be a mapping"),
])
def test_bad_values_name_the_config_key(options: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        CorpusConfig.from_dict(options)


def test_synth_cli_refuses_a_bad_block_in_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["corpus", "synth", "--out", str(tmp_path / "c"), "--synthetic", json.dumps({"trials": 0}), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1
    assert err[0].startswith("svbench: error: corpus.synthetic.trials: must be an integer >= 2, got 0")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(("command", "key"), [
    (["convert", "--list", "l.txt", "--batch", "0", "--report", "r.tsv", "--voxceleb", "{}"], "vox2_dev"),
    (["voxceleb", "--vox2-list", "l.txt", "--out", "o", "--corpus",
      json.dumps({"voxceleb": {"vox2_dev": "v2", "trials": {"o": "o.txt"}}})], "vox1"),
])
def test_voxceleb_commands_name_an_unset_tree(command: list[str], key: str, tmp_path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["corpus", *command])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and err[-1].startswith(f"svbench: error: corpus.voxceleb.{key}: not set"), err
