"""Issue 27: the packages stand in layers. What runs after a job (the accounting) and the study's uncertainty import
nothing of the study; the uncertainty imports nothing of the accounting either (carbon no longer reaches up into the
draws: the draws read the factors)."""

from __future__ import annotations

import ast

import pytest
from support import REPO

LOWER = ("svbench.errors", "svbench.fileio", "svbench.schemas", "svbench.typed_config", "svbench.instrument",
         "svbench.metrics", "svbench.layout", "svbench.corpus.manifest")


def svbench_imports(package: str) -> list[tuple[str, str]]:
    """(file, module) of every svbench module imported by ``package``'s files, at any depth of the code."""
    found = []
    for path in sorted((REPO / package.replace(".", "/")).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [(path.name, name) for name in names if name.startswith("svbench")]
    return found


@pytest.mark.parametrize(("package", "allowed"), [
    ("svbench.energy", ("svbench.energy", "svbench.errors", "svbench.fileio", "svbench.instrument")),
    ("svbench.uncertainty", ("svbench.uncertainty", *LOWER)),
])
def test_a_package_imports_only_the_layers_below_it(package: str, allowed: tuple[str, ...]) -> None:
    outside = [f"{file}: {name}" for file, name in svbench_imports(package) if not name.startswith(allowed)]
    assert not outside, outside


def test_the_layer_check_sees_an_import_inside_a_function() -> None:
    assert ("score_intervals.py", "svbench.corpus.manifest") in svbench_imports("svbench.uncertainty")


def test_no_function_is_longer_than_60_lines() -> None:
    """Issue 27: a function that does one thing reads on one screen."""
    long = []
    for path in sorted((REPO / "svbench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1}")
    assert not long, long
