"""An IPMI reading that answered on a retry is stamped within the try that answered, not at the
midpoint of the whole read() (which would put it seconds early)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from support import FAKES

from svbench.instrument.config import IpmiConfig
from svbench.instrument.sensors import ipmi
from svbench.instrument.sensors.base import Reading
from svbench.instrument.sidecar import _Slot

TIMEOUT_S = 1.0


@pytest.fixture
def stalls_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake ipmitool on PATH: the command after open()'s reading stalls (cut at the timeout), the next answers."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(FAKES / "ipmitool", bin_dir / "ipmitool")
    (bin_dir / "ipmitool").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SVBENCH_IPMITOOL", raising=False)
    monkeypatch.delenv("FAKE_IPMI_MODE", raising=False)
    monkeypatch.delenv("FAKE_IPMI_ARGV", raising=False)
    monkeypatch.setenv("FAKE_IPMI_COUNT", str(tmp_path / "count"))
    monkeypatch.setenv("FAKE_IPMI_MODE_FILE", str(tmp_path / "mode"))
    # reading 1 (open) answers; from then on the mode file says "stall", except past reading 2
    monkeypatch.setenv("FAKE_IPMI_FAIL_AFTER", "2")
    monkeypatch.setenv("FAKE_IPMI_FAIL_MODE", "ok")
    return tmp_path / "mode"


@pytest.mark.parametrize("persistent", [True, False])
def test_retried_reading_is_stamped_within_the_try_that_answered(stalls_once: Path, persistent: bool) -> None:
    sensor = ipmi.IpmiSensor(IpmiConfig(timeout_s=TIMEOUT_S, retries=1, persistent=persistent))
    sensor.open()
    assert sensor.last_stamp is not None  # open()'s reading answered at once
    stalls_once.write_text("stall")
    slot = _Slot(sensor, 0.0, threading.Event())
    before_wall, before_mono = time.time_ns(), time.monotonic_ns()
    name, readings, t_wall, t_mono = slot.read()
    after_mono = time.monotonic_ns()
    sensor.close()
    assert name == "ipmi" and readings == [Reading("node", "power", 251.0, "W", "node")]
    assert (stalls_once.parent / "count").read_text().strip() == "3"  # the stalled try, then the one that answered
    # the first try took the whole timeout: the answer came after it, and so does its stamp
    assert t_mono >= before_mono + TIMEOUT_S * 1e9
    assert t_mono <= after_mono
    assert (t_mono, t_wall) == (sensor.last_stamp[1], sensor.last_stamp[0])
    # wall and monotonic parts are the same instant (to the scheduling noise of reading two clocks)
    assert abs((t_wall - before_wall) - (t_mono - before_mono)) < 50_000_000


def test_failed_read_leaves_no_stamp(stalls_once: Path) -> None:
    sensor = ipmi.IpmiSensor(IpmiConfig(timeout_s=0.3, retries=0, persistent=False))
    sensor.open()
    stalls_once.write_text("stall")
    with pytest.raises(ipmi.IpmiError):
        sensor.read()
    assert sensor.last_stamp is None


class _Stub:
    """A sensor whose read takes 0.2 s; ``stamp`` is what it reports as ``last_stamp`` (absent if None)."""

    name = "stub"
    interval_s = 1.0

    def __init__(self, stamp: tuple[int, int] | None, fail: bool = False) -> None:
        if stamp is not None:
            self.last_stamp = stamp
        self.fail = fail

    def read(self) -> list[Reading]:
        time.sleep(0.2)
        if self.fail:
            raise RuntimeError("gone")
        return [Reading("x", "power", 1.0, "W", "other")]


def test_slot_uses_the_sensor_stamp_when_there_is_one() -> None:
    _, _, t_wall, t_mono = _Slot(_Stub((111, 222)), 0.0, threading.Event()).read()  # type: ignore[arg-type]
    assert (t_wall, t_mono) == (111, 222)


@pytest.mark.parametrize("stub", [_Stub(None), _Stub((111, 222), fail=True)], ids=["no stamp", "failed"])
def test_slot_falls_back_to_the_midpoint(stub: _Stub) -> None:
    before = time.monotonic_ns()
    _, _, _, t_mono = _Slot(stub, 0.0, threading.Event()).read()  # type: ignore[arg-type]
    after = time.monotonic_ns()
    assert abs(t_mono - (before + after) // 2) < 20_000_000
