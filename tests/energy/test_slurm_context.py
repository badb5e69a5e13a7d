"""Job context and the sacct cross-check, with fake `scontrol`/`sacct` scripts on PATH."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from svbench.instrument import slurm


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "16")
    return tmp_path


def test_context_records_job_and_exclusivity(fake_slurm: Path) -> None:
    _tool(fake_slurm, "scontrol", 'echo "JobId=77 JobName=x OverSubscribe=NO Partition=gpu"')
    ctx = slurm.job_context()
    assert ctx["slurm_job_id"] == "77" and ctx["slurm_cpus_on_node"] == "16" and ctx["exclusive"] is True
    _tool(fake_slurm, "scontrol", 'echo "JobId=77 OverSubscribe=OK"')
    assert slurm.job_context()["exclusive"] is False


def test_consumed_energy_zero_or_missing_is_not_measured(fake_slurm: Path) -> None:
    _tool(fake_slurm, "sacct", "echo 123456")
    assert slurm.consumed_energy_j("77") == 123456.0
    _tool(fake_slurm, "sacct", "echo 0")
    assert slurm.consumed_energy_j("77") is None
    _tool(fake_slurm, "sacct", "echo")
    assert slurm.consumed_energy_j("77") is None
    _tool(fake_slurm, "sacct", "echo 'Slurm accounting storage is disabled' >&2; exit 1")
    assert slurm.consumed_energy_j("77") is None


def test_no_slurm_means_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert slurm.job_context()["exclusive"] is None
