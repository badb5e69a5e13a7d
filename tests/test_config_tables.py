"""config/README.md's key tables are made from the schema (`svbench config tables`): each default and meaning is
written once, in svbench/schemas/config.schema.yaml."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from support import REPO

from svbench import config_tables
from svbench.cli import main


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_the_committed_tables_are_the_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["config", "tables", "--check", str(REPO / "config/README.md")], capsys)
    assert code == 0, "config/README.md differs from the schema: run svbench config tables config/README.md"
    assert out.endswith("key tables current\n")


@pytest.fixture
def readme(tmp_path: Path) -> Path:
    copy = tmp_path / "my config" / "README.md"
    copy.parent.mkdir()
    shutil.copy(REPO / "config/README.md", copy)
    return copy


def test_a_table_edited_by_hand_is_found_and_written_again(readme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    committed = readme.read_text()
    edited = committed.replace("| `epochs` | 150 |", "| `epochs` | 100 |")
    assert edited != committed
    readme.write_text(edited)
    code, out, _ = run_cli(["config", "tables", "--check", str(readme)], capsys)
    assert code == 1 and "differ from svbench/schemas/config.schema.yaml" in out
    assert readme.read_text() == edited  # --check changes nothing
    code, out, _ = run_cli(["config", "tables", str(readme)], capsys)
    assert code == 0 and out.endswith("key tables written\n")
    assert readme.read_text() == committed


def test_every_key_has_a_row_with_its_default() -> None:
    rows = {key: default for key, default, _ in config_tables.key_rows("energy")}
    assert rows["`nvml.interval_s`"] == "0.1" and rows["`ipmi.extra_args`"] == "`[]`"
    assert rows["`sensors`"] == "`[nvml, rapl, ipmi]`" and rows["`rapl.root`"] == "null"
    carbon = {key: default for key, default, _ in config_tables.key_rows("carbon")}
    assert carbon["`pue`"].startswith("1.2 (Jean Zay")  # a factor: its value and its source
    grid = {key: default for key, default, _ in config_tables.key_rows("grid[]")}
    assert grid["`width`"] == "32" and grid["`pooling`"] == "`tstp`"  # ArchSpec's: the schema holds no entry default
    assert grid["`stages`"] == grid["`nodes`"] == "–"


@pytest.mark.parametrize(("text", "message"), [
    ("# t\n\n<!-- keys: trainnig -->\n<!-- end keys -->\n", r"README\.md:3: .*no config key 'trainnig'"),
    ("# t\n<!-- keys: training -->\n| key |\n", r"README\.md:2: <!-- keys: training --> has no <!-- end keys -->"),
])
def test_a_broken_marker_is_named_with_its_line(readme: Path, text: str, message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    readme.write_text(text)
    code, _, err = run_cli(["config", "tables", str(readme)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and re.search(message, err), err
    assert readme.read_text() == text  # nothing written


def test_a_key_without_a_description_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    section = {"type": "object", "properties": {"top_n": {"type": "integer", "default": 300}}}
    monkeypatch.setattr(config_tables, "schema_node", lambda key: section)
    with pytest.raises(config_tables.UserError, match=r"scoring\.top_n: no description"):
        config_tables.key_table("scoring")


def test_a_missing_readme_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["config", "tables", str(tmp_path / "nope.md")], capsys)
    assert code == 2 and f"{tmp_path / 'nope.md'}: cannot read" in err and not (tmp_path / "nope.md").exists()
