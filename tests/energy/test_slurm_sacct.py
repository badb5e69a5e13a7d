"""sacct's ConsumedEnergy per attempt of a requeued job, with a fake `sacct` on PATH that answers as the
real one does: one row per attempt with -D/--duplicates, only the latest attempt without it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from svbench.energy.join import slurm_crosscheck
from svbench.instrument import slurm
from svbench.instrument.markers import Marker, Phase

S = 1_000_000_000
START_1, START_2 = 1_700_000_000, 1_700_003_600  # SLURM's Start of attempts 1 and 2 (s since the epoch)
BEGIN_1, BEGIN_2 = START_1 * S + 5_300_000_000, START_2 * S + 4_000_000_000  # the monitor's begin markers
# attempt 1 (requeued) and attempt 2, as sacct -D lists them; a pending attempt has Start "Unknown"
ROWS = f"3600000|{START_1}\\n7200000|{START_2}"


def _sacct(folder: Path, rows: str = ROWS, iso: bool = False) -> Path:
    """A fake sacct printing ``rows`` (ConsumedEnergyRaw|Start) with -D, only the last row without it.
    ``iso``: Start as local YYYY-MM-DDTHH:MM:SS whatever SLURM_TIME_FORMAT says (a sacct that ignores it)."""
    log = folder / "sacct.log"
    conv = ('while IFS="|" read -r e s; do case $s in *[!0-9]*|"") echo "$e|$s";; '
            '*) echo "$e|$(date -d @"$s" +%Y-%m-%dT%H:%M:%S)";; esac; done') if iso else "cat"
    body = f"""#!/bin/sh
echo "SLURM_TIME_FORMAT=${{SLURM_TIME_FORMAT:-}} $*" >> {log}
case " $* " in
    *" -D "*) printf '{rows}\\n' | {conv} ;;
    *) printf '{rows}\\n' | tail -n 1 | {conv} ;;
esac
"""
    path = folder / "sacct"
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return log


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    return tmp_path


def test_each_attempt_gets_its_own_consumed_energy(bin_dir: Path) -> None:
    log = _sacct(bin_dir)
    assert slurm.consumed_energy_j("77", BEGIN_1) == 3600000.0
    assert slurm.consumed_energy_j("77", BEGIN_2) == 7200000.0
    assert slurm.consumed_energy_j("77") == 7200000.0  # no attempt given: the latest, as sacct without -D
    assert slurm.consumed_energy_j("77", START_1 * S - 10 * S) is None  # before any attempt started
    call = log.read_text().splitlines()[0]
    assert call.startswith("SLURM_TIME_FORMAT=%s ")  # Start in epoch seconds: no time-zone guessing
    assert call.split()[1:] == ["-j", "77", "-X", "-D", "-n", "-P", "-o", "ConsumedEnergyRaw,Start"]


def test_start_within_the_slack_and_unstarted_rows(bin_dir: Path) -> None:
    # the controller's clock may run a little ahead of the node's: a begin marker 1 s "before" Start is that attempt's
    _sacct(bin_dir, f"3600000|{START_1}\\n7200000|{START_2}\\n|Unknown")
    assert slurm.consumed_energy_j("77", START_2 * S - S) == 7200000.0
    assert slurm.consumed_energy_j("77", BEGIN_2) == 7200000.0
    _sacct(bin_dir, f"0|{START_1}\\n7200000|{START_2}")
    assert slurm.consumed_energy_j("77", BEGIN_1) is None  # 0 J: the plugin had no sensor for that attempt


def test_standard_time_format_is_read_as_local_time(bin_dir: Path) -> None:
    _sacct(bin_dir, iso=True)
    assert slurm.consumed_energy_j("77", BEGIN_1) == 3600000.0
    assert slurm.consumed_energy_j("77", BEGIN_2) == 7200000.0


def test_crosscheck_rows_per_attempt(bin_dir: Path) -> None:
    _sacct(bin_dir)
    records = [Marker("begin", BEGIN_1, 10 * S, slurm_job_id="77"), Marker("begin", BEGIN_2, 20 * S, slurm_job_id="77")]
    phases = [Phase("job", None, 10 * S, 1000 * S, BEGIN_1, BEGIN_1 + 990 * S, False, attempt=1),
              Phase("job", None, 20 * S, 2000 * S, BEGIN_2, BEGIN_2 + 1980 * S, True, attempt=2)]
    frame = slurm_crosscheck(records, phases)
    assert frame.set_index("attempt")["energy_j"].to_dict() == {1: 3600000.0, 2: 7200000.0}
