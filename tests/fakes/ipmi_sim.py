"""A simulated BMC for tests and benchmarks: OpenIPMI's ``ipmi_sim`` answering IPMI over LAN on a local
UDP port. It has no DCMI, so ``dcmi power reading`` fails there exactly as on a BMC without DCMI."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

PASSWORD = "sim-secret-7"
LAN_CONF = """
name "svbench-test"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
user 2 true "admin" "{password}" admin 10 none md2 md5 straight
"""
EMU = """
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
mc_enable 0x20
"""


def available() -> bool:
    return bool(shutil.which("ipmitool") and shutil.which("ipmi_sim"))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_bmc(folder: Path, timeout_s: float = 20.0) -> tuple[subprocess.Popen, list[str]]:
    """Start ipmi_sim with its files in ``folder``; returns it and the ipmitool arguments that reach it,
    once it answers ``mc info``. RuntimeError if it does not."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_udp_port()
    (folder / "lan.conf").write_text(LAN_CONF.format(port=port, password=PASSWORD))
    (folder / "bmc.emu").write_text(EMU)
    (folder / "state").mkdir(exist_ok=True)
    sim = subprocess.Popen([shutil.which("ipmi_sim") or "ipmi_sim", "-c", str(folder / "lan.conf"),
                            "-f", str(folder / "bmc.emu"), "-n", "-s", str(folder / "state")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    args = ["-I", "lan", "-H", "127.0.0.1", "-p", str(port), "-U", "admin", "-P", PASSWORD]
    deadline = time.monotonic() + timeout_s
    while subprocess.run(["ipmitool", *args, "mc", "info"], capture_output=True, timeout=10).returncode != 0:
        if sim.poll() is not None or time.monotonic() > deadline:
            sim.kill()
            sim.wait()
            raise RuntimeError(f"ipmi_sim did not answer on UDP port {port} (exit status {sim.poll()})")
        time.sleep(0.2)
    return sim, args
