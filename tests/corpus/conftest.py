"""Fixtures of the corpus tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def vox(vox_source: Path, tmp_path: Path) -> Path:
    """A private copy of the module's ``vox_source`` tree (a fixture each test module defines) that a test may
    break."""
    shutil.copytree(vox_source, tmp_path / "vox")
    return tmp_path / "vox"
