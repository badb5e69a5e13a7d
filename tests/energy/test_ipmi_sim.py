"""The IPMI sensor against the real ipmitool and OpenIPMI's BMC simulator (``ipmi_sim``) over LAN.

The fake ipmitool (tests/fakes) copies the real output formats; this checks what a copy cannot: how
the real ``ipmitool shell`` frames its answers on pipes (prompt, echo, errors), and what the sensor
makes of a real BMC without DCMI (the simulator has none). Needs Debian's ``ipmitool`` and
``openipmi``; skipped without them unless SVBENCH_REQUIRE_IPMI_SIM=1 (CI), where they must be there.
"""

from __future__ import annotations

import os
import shutil

import psutil
import pytest
from fakes import ipmi_sim

from svbench.instrument.config import IpmiConfig
from svbench.instrument.sensors import SensorUnavailable, ipmi

IPMITOOL = shutil.which("ipmitool")

if not ipmi_sim.available():
    if os.environ.get("SVBENCH_REQUIRE_IPMI_SIM") == "1":
        raise RuntimeError("SVBENCH_REQUIRE_IPMI_SIM=1 but ipmitool or ipmi_sim is missing: "
                           "apt-get install ipmitool openipmi")
    pytest.skip("ipmitool and ipmi_sim (Debian: ipmitool openipmi) are not installed", allow_module_level=True)


@pytest.fixture
def bmc(tmp_path):
    """A simulated BMC on a local UDP port; yields the ipmitool arguments that reach it."""
    sim, args = ipmi_sim.start_bmc(tmp_path / "bmc")
    try:
        yield args
    finally:
        sim.kill()
        sim.wait()


def test_real_ipmitool_shell_answers_one_command_at_a_time(bmc):
    shell = ipmi.IpmitoolShell([IPMITOOL, *bmc, "shell"])
    shell.start(timeout_s=10)
    try:
        for _ in range(2):
            info = shell.command("mc info", timeout_s=10)
            assert info.splitlines()[0].startswith("Device ID")  # neither the echo nor a prompt
            assert "MontaVista" in info and "ipmitool>" not in info
        failed = shell.command(ipmi.READING_LINE, timeout_s=10)
        assert "DCMI request failed because: Invalid command (c1)" in failed and "ipmitool>" not in failed
    finally:
        shell.stop()
    assert not shell.running


def _without_password(args: list[str]) -> list[str]:
    k = args.index("-P")
    return args[:k] + args[k + 2:]


@pytest.mark.parametrize("persistent", [True, False])
@pytest.mark.parametrize("password", ["file", "env"])
def test_real_bmc_without_dcmi_is_unavailable_and_says_why(bmc, persistent, password, tmp_path, monkeypatch):
    """The real ipmitool logs in with the password from a file (-f) or a variable (-E), never from argv."""
    if password == "file":
        (tmp_path / "bmc.pw").write_text(ipmi_sim.PASSWORD + "\n")
        given = {"password_file": str(tmp_path / "bmc.pw")}
    else:
        monkeypatch.setenv("SIM_BMC_PASSWORD", ipmi_sim.PASSWORD)
        given = {"password_env": "SIM_BMC_PASSWORD"}
    sensor = ipmi.IpmiSensor(IpmiConfig(binary=IPMITOOL, extra_args=_without_password(bmc), retries=0, timeout_s=10,
                             persistent=persistent, **given))
    assert ipmi_sim.PASSWORD not in " ".join(sensor._argv())
    with pytest.raises(SensorUnavailable) as info:
        sensor.open()
    message = str(info.value)
    assert message.startswith("DCMI power reading not supported: ")
    assert "DCMI request failed because: Invalid command (c1)" in message
    assert ipmi_sim.PASSWORD not in message and ipmi_sim.PASSWORD not in str(sensor.metadata())


def test_real_ipmitool_shell_keeps_no_history(bmc):
    # readline keeps every line read in its history: over a long job, a line per reading adds up
    # (with the default settings this grows by ~0.5 MB here; with svbench's inputrc by nothing)
    assert os.path.isfile(ipmi.SHELL_ENV["INPUTRC"])
    shell = ipmi.IpmitoolShell([IPMITOOL, *bmc, "shell"])
    shell.start(timeout_s=10)
    try:
        line = "echo " + "x" * 1000  # answered by ipmitool itself: no BMC round trip
        shell.command(line, timeout_s=10)
        before = psutil.Process(shell.pid).memory_info().rss
        for _ in range(500):
            shell.command(line, timeout_s=10)
        growth = psutil.Process(shell.pid).memory_info().rss - before
    finally:
        shell.stop()
    assert growth < 250_000, growth
