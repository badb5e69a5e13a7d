"""An installed svbench is whole: its wheel carries what the package reads at run time (issue 27: the config
schema lay in workflow/schemas/, outside the package, so `svbench monitor --config` failed in an installed
wheel)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from support import REPO


def test_the_wheel_runs_svbench_monitor_with_a_config(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: setuptools builds in the source tree (build/, *.egg-info)
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "svbench", source / "svbench", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("svbench-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    config = tmp_path / "energy.yaml"
    config.write_text("baseline_s: 1\nnvml: {interval_s: 0.2}\n")
    # the wheel's svbench first on the path, the development venv's dependencies after it; run away from the
    # repository, so that nothing is read from a checkout
    env = os.environ | {"PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", "import svbench, sys; from svbench.cli import main; "
                          "assert svbench.__file__.startswith(sys.argv[1]), svbench.__file__; "
                          "sys.argv = ['svbench', 'monitor', '--out', 'm', '--config', sys.argv[2], '--', 'true']; "
                          "main()", str(site), str(config)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    written = json.loads((tmp_path / "m" / "sidecar_config.json").read_text())
    assert written["baseline_s"] == 1 and written["nvml"]["interval_s"] == 0.2 and written["rapl"]["interval_s"] > 0
