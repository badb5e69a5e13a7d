"""The real sensors against fakes at the OS boundary: a powercap tree, a fake pynvml, fake IPMI tools."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from fakes.powercap import PowercapTree, two_socket_server
from support import FAKES

from svbench.instrument.config import EnergyConfig, IpmiConfig, NvmlConfig, RaplConfig
from svbench.instrument.sensors import ipmi, nvml, rapl
from svbench.instrument.sensors.base import Reading, Sensor, SensorConfigError, SensorUnavailable


def by_key(readings: list[Reading]) -> dict[tuple[str, str], Reading]:
    return {(r.channel, r.quantity): r for r in readings}


# --- RAPL --------------------------------------------------------------------------------------


def test_rapl_two_sockets_package_and_dram_not_core(tmp_path):
    tree = two_socket_server(tmp_path)
    sensor = rapl.RaplSensor(RaplConfig(root=str(tmp_path)))
    assert isinstance(sensor, Sensor)
    sensor.open()

    first = sensor.read()
    assert [(r.channel, r.component) for r in first] == [
        ("package-0", "cpu"),
        ("package-1", "cpu"),
        ("dram-0", "dram"),
        ("dram-1", "dram"),
    ]
    assert all(r.quantity == "energy" and r.unit == "J" and r.value == 0.0 and not r.estimated for r in first)

    tree.set_energy("intel-rapl:0", 1_000_000 + 5_000_000)
    tree.set_energy("intel-rapl:0:0", 500_000 + 1_250_000)
    tree.set_energy("intel-rapl:0:1", 700_000 + 4_000_000)  # core: inside package-0, must not add up
    tree.set_energy("intel-rapl:1", 2_000_000 + 3_000_000)
    got = by_key(sensor.read())
    assert got["package-0", "energy"].value == pytest.approx(5.0)
    assert got["dram-0", "energy"].value == pytest.approx(1.25)
    assert got["package-1", "energy"].value == pytest.approx(3.0)
    assert got["dram-1", "energy"].value == 0.0
    assert sum(r.value for r in got.values()) == pytest.approx(9.25)

    meta = sensor.metadata()
    assert set(meta["channels"]) == {"package-0", "package-1", "dram-0", "dram-1"}
    assert "intel-rapl:0:1" in meta["skipped_zones"] and "core" in meta["skipped_zones"]["intel-rapl:0:1"]
    assert "intel-rapl-mmio:0" in meta["skipped_zones"]
    sensor.close()


def test_sysfs_attribute_is_fresh_on_every_pread_at_offset_zero():
    # RaplSensor keeps energy_uj open and preads it. This checks that kernel promise on a real sysfs
    # counter of this machine (RAPL itself is seldom readable in CI): loopback packets sent between
    # two preads of one kept-open descriptor must show up in the second.
    import socket

    path = "/sys/class/net/lo/statistics/tx_packets"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        pytest.skip(f"no {path}: {exc}")
    try:
        before = int(os.pread(fd, 32, 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(3):
                sock.sendto(b"x", ("127.0.0.1", 9))
        after = int(os.pread(fd, 32, 0))
    finally:
        os.close(fd)
    assert after >= before + 3


def test_rapl_rereads_kept_open_counter_and_closes_it(tmp_path):
    tree = PowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", energy_uj=1_000_000)
    sensor = rapl.RaplSensor(RaplConfig(root=str(tmp_path)))
    sensor.open()
    fds = [ch.fd for ch in sensor._channels]
    assert all(fd >= 0 for fd in fds)
    tree.set_energy("intel-rapl:0", 3_500_000)  # rewritten in place, as the kernel does
    assert sensor.read()[0].value == pytest.approx(2.5)
    sensor.close()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
    sensor.close()  # twice is fine


def test_rapl_unwraps_counter_past_max_energy_range(tmp_path):
    tree = PowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", energy_uj=9_000_000, max_range_uj=10_000_000)
    sensor = rapl.RaplSensor(RaplConfig(root=str(tmp_path), max_power_w=None))  # unbounded: instant reads
    sensor.open()
    values = []
    for raw in (9_500_000, 1_000_000, 9_900_000, 200_000, 200_000):  # two wraps
        tree.set_energy("intel-rapl:0", raw)
        values.append(sensor.read()[0].value)
    assert values == pytest.approx([0.5, 2.0, 10.9, 11.2, 11.2])
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))


def test_rapl_unwraps_at_real_intel_range(tmp_path):
    tree = PowercapTree(tmp_path)
    top = 262_143_328_850
    tree.add_zone("intel-rapl:0", "package-0", energy_uj=top - 100_000_000, max_range_uj=top)
    sensor = rapl.RaplSensor(RaplConfig(root=str(tmp_path), max_power_w=None))
    sensor.open()
    tree.set_energy("intel-rapl:0", 150_000_000)  # 100 J to the top, 150 J after the wrap
    assert sensor.read()[0].value == pytest.approx(250.0)


def test_rapl_client_psys_kept_separate_and_amd_without_dram(tmp_path):
    client = tmp_path / "client"
    client.mkdir()
    tree = PowercapTree(client)
    tree.add_zone("intel-rapl:0", "package-0")
    tree.add_zone("intel-rapl:0:0", "core")
    tree.add_zone("intel-rapl:0:1", "uncore")
    tree.add_zone("intel-rapl:0:2", "dram")
    tree.add_zone("intel-rapl:1", "psys")
    sensor = rapl.RaplSensor(RaplConfig(root=str(client)))
    sensor.open()
    assert [(r.channel, r.component) for r in sensor.read()] == [
        ("package-0", "cpu"),
        ("psys", "other"),
        ("dram-0", "dram"),
    ]
    assert {"intel-rapl:0:0", "intel-rapl:0:1"} <= set(sensor.metadata()["skipped_zones"])

    # AMD Zen: same intel-rapl names from the intel_rapl_msr driver, package and core, no DRAM.
    amd = tmp_path / "amd"
    amd.mkdir()
    tree = PowercapTree(amd)
    tree.add_zone("intel-rapl:0", "package-0", max_range_uj=65_532_610_987)
    tree.add_zone("intel-rapl:0:0", "core", max_range_uj=65_532_610_987)
    sensor = rapl.RaplSensor(RaplConfig(root=str(amd)))
    sensor.open()
    assert [r.channel for r in sensor.read()] == ["package-0"]


def test_rapl_missing_root_or_zones_is_unavailable(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(SensorUnavailable, match=str(missing)):
        rapl.RaplSensor(RaplConfig(root=str(missing))).open()
    with pytest.raises(SensorUnavailable, match="no intel-rapl zones"):
        rapl.RaplSensor(RaplConfig(root=str(tmp_path))).open()
    monkeypatch.setenv("SVBENCH_POWERCAP_ROOT", str(missing))
    sensor = rapl.RaplSensor()
    assert sensor.root == missing
    with pytest.raises(SensorUnavailable, match="no powercap folder"):
        sensor.open()
    sensor.close()  # safe after a failed open


def _open_rapl_as_nobody(root: str) -> str:
    """Open a RaplSensor in a forked child that dropped root; return what happened."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        os.close(read_fd)
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                rapl.RaplSensor(RaplConfig(root=root)).open()
                message = "opened"
            except SensorUnavailable as exc:
                message = f"unavailable: {exc}"
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            message = f"setup: {exc!r}"
        os.write(write_fd, message.encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        message = f.read()
    os.waitpid(pid, 0)
    return message


def test_rapl_root_only_counter_is_unavailable_not_zero():
    # chmod 000 denies reads only to non-root; as root, run the open in a child that drops to nobody.
    # The tree lives in a world-traversable folder so that only energy_uj itself is denied.
    folder = tempfile.mkdtemp(prefix="svbench-powercap-")
    try:
        os.chmod(folder, 0o755)
        tree = PowercapTree(Path(folder))
        tree.add_zone("intel-rapl:0", "package-0", energy_uj=123)
        os.chmod(tree.energy_file("intel-rapl:0"), 0o000)
        if os.geteuid() != 0:
            with pytest.raises(SensorUnavailable) as info:
                rapl.RaplSensor(RaplConfig(root=folder)).open()
            message = f"unavailable: {info.value}"
        else:
            message = _open_rapl_as_nobody(folder)
            if message.startswith("setup:"):
                pytest.skip(f"cannot drop root to test a denied read here: {message}")
        assert message.startswith("unavailable: permission:"), message
        assert "energy_uj" in message and "CVE-2020-8694" in message and "5.10" in message
    finally:
        shutil.rmtree(folder)


def test_rapl_reads_its_config_keys(tmp_path):
    sensor = rapl.RaplSensor(EnergyConfig.from_dict({"rapl": {"root": str(tmp_path), "interval_s": 0.25}}).rapl)
    assert (sensor.root, sensor.interval_s, sensor.name) == (tmp_path, 0.25, "rapl")
    assert rapl.RaplSensor().interval_s == 0.5


# --- NVML --------------------------------------------------------------------------------------

UUID_A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID_B = "GPU-bbbbbbbb-5555-6666-7777-888888888888"


def two_gpus(fake) -> None:
    fake.add_gpu(UUID_A, energy_mj=1_000_000, instant_mw=300_000, power_mw=310_000, util=40)
    fake.add_gpu(UUID_B, energy_mj=5_000_000, instant_mw=150_500, power_mw=160_000, util=90)


def test_nvml_two_gpus_energy_power_context(fake_nvml):
    two_gpus(fake_nvml)
    sensor = nvml.NvmlSensor()
    assert isinstance(sensor, Sensor)
    sensor.open()
    got = by_key(sensor.read())
    assert got["gpu0", "energy"] == Reading("gpu0", "energy", 0.0, "J", "gpu")
    assert got["gpu0", "power"] == Reading("gpu0", "power", 300.0, "W", "gpu")
    assert got["gpu0", "power_avg"] == Reading("gpu0", "power_avg", 310.0, "W", "gpu")
    assert got["gpu1", "power"].value == pytest.approx(150.5)
    assert got["gpu1", "utilisation"] == Reading("gpu1", "utilisation", 90.0, "%", "gpu")
    assert got["gpu1", "memory"] == Reading("gpu1", "memory", float(2 << 30), "B", "gpu")

    fake_nvml.GPUS[0]["energy_mj"] += 2_500
    fake_nvml.GPUS[1]["energy_mj"] += 123_456
    got = by_key(sensor.read())
    assert got["gpu0", "energy"].value == pytest.approx(2.5)
    assert got["gpu1", "energy"].value == pytest.approx(123.456)

    meta = sensor.metadata()
    assert meta["driver_version"] == fake_nvml.DRIVER_VERSION
    assert meta["devices"]["gpu0"]["uuid"] == UUID_A and meta["devices"]["gpu1"]["uuid"] == UUID_B
    assert meta["devices"]["gpu1"]["name"] == "NVIDIA H100 80GB HBM3"
    assert meta["devices"]["gpu0"]["energy_counter"] is True
    assert meta["devices"]["gpu0"]["energy_at_open_mj"] == 1_000_000
    json.dumps(meta)

    sensor.close()
    sensor.close()
    assert fake_nvml.calls == {"init": 1, "shutdown": 1}


def test_nvml_cuda_visible_devices_by_index(fake_nvml, monkeypatch):
    two_gpus(fake_nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    sensor = nvml.NvmlSensor()
    sensor.open()
    assert {r.channel for r in sensor.read()} == {"gpu0"}
    meta = sensor.metadata()
    assert meta["devices"]["gpu0"]["uuid"] == UUID_B and meta["devices"]["gpu0"]["nvml_index"] == 1
    assert any("CUDA_DEVICE_ORDER" in n for n in meta["notes"])
    sensor.close()

    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    sensor.open()
    meta = sensor.metadata()
    assert [meta["devices"][c]["uuid"] for c in ("gpu0", "gpu1")] == [UUID_B, UUID_A]
    assert meta["notes"] == []
    sensor.close()


def test_nvml_cuda_visible_devices_by_uuid_and_prefix(fake_nvml, monkeypatch):
    two_gpus(fake_nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{UUID_B},GPU-aaaa")
    sensor = nvml.NvmlSensor()
    sensor.open()
    meta = sensor.metadata()
    assert [meta["devices"][c]["uuid"] for c in ("gpu0", "gpu1")] == [UUID_B, UUID_A]
    assert by_key(sensor.read())["gpu0", "power"].value == pytest.approx(150.5)
    sensor.close()


@pytest.mark.parametrize(
    "visible, expected",
    [
        ("", None),
        ("7", None),
        ("-1", None),
        ("MIG-11111111-2222-3333-4444-555555555555", None),
        ("0,7,1", [UUID_A]),  # CUDA ignores an invalid entry and everything after it
        ("MIG-11111111-2222-3333-4444-555555555555,1", [UUID_B]),
        ("GPU-ffff", None),
    ],
)
def test_nvml_cuda_visible_devices_edge_cases(fake_nvml, monkeypatch, visible, expected):
    two_gpus(fake_nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    sensor = nvml.NvmlSensor()
    if expected is None:
        with pytest.raises(SensorUnavailable, match="CUDA_VISIBLE_DEVICES"):
            sensor.open()
        assert fake_nvml.calls["shutdown"] == fake_nvml.calls["init"]  # released after the failed open
    else:
        sensor.open()
        devices = sensor.metadata()["devices"]
        assert [devices[f"gpu{k}"]["uuid"] for k in range(len(devices))] == expected
        sensor.close()


def test_nvml_gpu_without_energy_counter_gives_power_only(fake_nvml):
    # Pre-Volta: no energy counter and no instant-power field; nvmlDeviceGetPowerUsage is the power.
    fake_nvml.add_gpu(UUID_A, name="Tesla P100-PCIE-16GB", energy_mj=None, instant_mw=None, power_mw=95_000)
    fake_nvml.add_gpu(UUID_B)
    sensor = nvml.NvmlSensor()
    sensor.open()
    got = by_key(sensor.read())
    assert ("gpu0", "energy") not in got and ("gpu0", "power_avg") not in got
    assert got["gpu0", "power"] == Reading("gpu0", "power", 95.0, "W", "gpu")
    assert ("gpu1", "energy") in got and ("gpu1", "power_avg") in got
    gpu0 = sensor.metadata()["devices"]["gpu0"]
    assert gpu0["energy_counter"] is False and gpu0["power_source"] == "nvmlDeviceGetPowerUsage"
    assert any("Not Supported" in n for n in gpu0["notes"])
    sensor.close()


def test_nvml_failed_instant_field_keeps_energy(fake_nvml):
    two_gpus(fake_nvml)
    sensor = nvml.NvmlSensor()
    sensor.open()
    fake_nvml.GPUS[0]["instant_mw"] = None  # the field answers NOT_SUPPORTED in its own nvmlReturn
    got = by_key(sensor.read())
    assert ("gpu0", "power") not in got and ("gpu0", "energy") in got and ("gpu1", "power") in got
    sensor.close()


def test_nvml_a_lost_gpu_is_a_gap_of_its_own_and_all_lost_raises(fake_nvml):
    two_gpus(fake_nvml)
    sensor = nvml.NvmlSensor()
    sensor.open()
    fake_nvml.GPUS[1]["lost"] = True
    readings = sensor.read()
    assert {r.channel for r in readings if r.quantity != "error"} == {"gpu0"}
    assert [(r.channel, r.quantity) for r in readings if r.quantity == "error"] == [("gpu1", "error")]
    assert sensor.metadata()["devices"]["gpu1"]["read_errors"] == 1
    fake_nvml.GPUS[0]["lost"] = True
    with pytest.raises(fake_nvml.NVMLError, match="GPU is lost"):
        sensor.read()
    sensor.close()


@pytest.mark.parametrize(
    "error, text",
    [(12, "NVML Shared Library Not Found"), (9, "Driver Not Loaded")],
)
def test_nvml_init_failure_is_unavailable(fake_nvml, error, text):
    fake_nvml.INIT_ERROR = error
    sensor = nvml.NvmlSensor()
    with pytest.raises(SensorUnavailable, match=text):
        sensor.open()
    sensor.close()
    assert fake_nvml.calls["shutdown"] == 0


def test_nvml_no_gpu_or_no_library(fake_nvml, monkeypatch):
    with pytest.raises(SensorUnavailable, match="no GPU"):
        nvml.NvmlSensor().open()
    assert fake_nvml.calls == {"init": 1, "shutdown": 1}

    fake_nvml.add_gpu(UUID_A, energy_mj=None, instant_mw=None, power_mw=None)
    with pytest.raises(SensorUnavailable, match="energy or power"):
        nvml.NvmlSensor().open()

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    with pytest.raises(SensorUnavailable, match="pynvml not importable"):
        nvml.NvmlSensor().open()


def test_nvml_field_value_follows_value_type(fake_nvml):
    fv = fake_nvml.c_nvmlFieldValue_t()
    fv.valueType = fake_nvml.NVML_VALUE_TYPE_DOUBLE
    fv.value.dVal = 12.5
    assert nvml.field_value(fv) == 12.5
    fv.valueType = fake_nvml.NVML_VALUE_TYPE_UNSIGNED_INT
    fv.value.uiVal = 250_000
    assert nvml.field_value(fv) == 250_000


def test_nvml_config_keys():
    assert nvml.NvmlSensor(EnergyConfig.from_dict({"nvml": {"interval_s": 0.05}}).nvml).interval_s == 0.05
    assert nvml.NvmlSensor().interval_s == 0.1
    assert nvml.NvmlSensor().context_interval_s == 1.0
    assert nvml.NvmlSensor(NvmlConfig(context_interval_s=0.1)).context_interval_s == 0.1


def test_nvml_context_figures_at_their_own_slower_rate(fake_nvml, monkeypatch):
    fake_nvml.add_gpu(UUID_A)  # instant power: power_avg is context
    fake_nvml.add_gpu(UUID_B, instant_mw=None)  # no instant power: power_avg is THE power, read every time
    clock = [100.0]
    monkeypatch.setattr(nvml.time, "monotonic", lambda: clock[0])
    sensor = nvml.NvmlSensor(NvmlConfig(interval_s=0.1, context_interval_s=1.0))
    sensor.open()
    seen = []
    for _ in range(21):  # 0.0 ... 2.0 s, every 0.1 s
        seen.append({(r.channel, r.quantity) for r in sensor.read()})
        clock[0] += 0.1
    every = {("gpu0", "energy"), ("gpu0", "power"), ("gpu1", "energy"), ("gpu1", "power")}
    context = {("gpu0", "power_avg"), ("gpu0", "utilisation"), ("gpu0", "memory"), ("gpu1", "utilisation"),
               ("gpu1", "memory")}
    assert all(every <= keys for keys in seen)
    with_context = [i for i, keys in enumerate(seen) if context <= keys]
    assert with_context == [0, 10, 20]  # the first read, then once a second
    assert all(keys == every for i, keys in enumerate(seen) if i not in with_context)
    sensor.close()


# --- IPMI --------------------------------------------------------------------------------------


@pytest.fixture
def fake_ipmi(tmp_path, monkeypatch):
    """Fake ipmitool and ipmi-dcmi first on PATH; returns the file where they log their arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ipmitool", "ipmi-dcmi"):
        shutil.copy(FAKES / tool, bin_dir / tool)
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SVBENCH_IPMITOOL", raising=False)
    monkeypatch.delenv("FAKE_IPMI_MODE", raising=False)
    argv_log = tmp_path / "argv.log"
    monkeypatch.setenv("FAKE_IPMI_ARGV", str(argv_log))
    monkeypatch.setenv("FAKE_IPMI_COUNT", str(tmp_path / "count"))
    monkeypatch.setenv("FAKE_IPMI_MODE_FILE", str(tmp_path / "mode"))
    return argv_log


def set_ipmi_mode(mode: str) -> None:
    """Change what the fake ipmitool does from its next command on, a running shell included."""
    Path(os.environ["FAKE_IPMI_MODE_FILE"]).write_text(mode)


def test_ipmitool_reading_through_one_shell(fake_ipmi):
    sensor = ipmi.IpmiSensor()
    assert isinstance(sensor, Sensor)
    sensor.open()
    assert sensor.read() == [Reading("node", "power", 251.0, "W", "node")]
    assert sensor.read()[0].value == 251.0
    # one process, started once; each reading is a command line written to it
    assert fake_ipmi.read_text().splitlines() == ["shell"] + ["dcmi power reading"] * 3
    meta = sensor.metadata()
    assert meta["tool"] == "ipmitool" and meta["command"][-3:] == ["dcmi", "power", "reading"]
    assert "long-lived" in meta["mode"]
    sensor.close()
    assert fake_ipmi.read_text().splitlines()[-1] == "exit"  # asked to leave, not only killed


def test_ipmitool_one_process_per_reading(fake_ipmi):
    sensor = ipmi.IpmiSensor(IpmiConfig(persistent=False))
    sensor.open()
    assert sensor.read() == [Reading("node", "power", 251.0, "W", "node")]
    assert fake_ipmi.read_text().splitlines() == ["dcmi power reading"] * 2
    assert sensor.metadata()["mode"] == "one process per reading"


def test_ipmitool_without_shell_falls_back_to_a_process_per_reading(fake_ipmi):
    set_ipmi_mode("noshell")  # ipmitool built without readline
    sensor = ipmi.IpmiSensor()
    sensor.open()
    assert sensor.read()[0].value == 251.0
    assert fake_ipmi.read_text().splitlines() == ["shell"] + ["dcmi power reading"] * 2
    assert "one process per reading (no shell: ipmitool shell ended (exit status 255): Compiled without readline" \
        in sensor.metadata()["mode"]


def test_ipmitool_shell_that_dies_or_stalls_is_started_again(fake_ipmi):
    sensor = ipmi.IpmiSensor(IpmiConfig(timeout_s=0.5, retries=0))
    sensor.open()
    set_ipmi_mode("crash")
    with pytest.raises(ipmi.IpmiError, match=r"ipmitool shell ended \(exit status 139\) \(1 try\)$"):
        sensor.read()
    set_ipmi_mode("stall")
    start = time.monotonic()
    with pytest.raises(ipmi.IpmiError, match="no answer within 0.5 s"):
        sensor.read()
    assert time.monotonic() - start < 0.5 + 2
    set_ipmi_mode("ok")
    assert sensor.read()[0].value == 251.0
    assert fake_ipmi.read_text().splitlines().count("shell") == 3  # the first, then one after each failure
    sensor.close()


def test_ipmitool_shell_that_answers_with_an_error_is_ended_and_replaced(fake_ipmi):
    # e.g. a LAN session the BMC dropped: the same shell would fail every reading from then on
    sensor = ipmi.IpmiSensor(IpmiConfig(retries=1))
    sensor.open()
    set_ipmi_mode("flaky")  # the next reading fails once, then answers
    Path(os.environ["FAKE_IPMI_COUNT"]).write_text("0")
    assert sensor.read()[0].value == 251.0
    calls = fake_ipmi.read_text().splitlines()
    assert calls == ["shell", "dcmi power reading"] + ["dcmi power reading", "exit", "shell", "dcmi power reading"]
    sensor.close()


def test_ipmitool_shell_that_never_prompts(fake_ipmi):
    set_ipmi_mode("hang")
    start = time.monotonic()
    with pytest.raises(SensorUnavailable, match="BMC not answering: no answer within 0.5 s"):
        ipmi.IpmiSensor(IpmiConfig(timeout_s=0.5)).open()
    assert time.monotonic() - start < 0.5 + 2


def test_ipmitool_from_env_and_config(fake_ipmi, tmp_path, monkeypatch):
    monkeypatch.setenv("SVBENCH_IPMITOOL", str(tmp_path / "bin" / "ipmitool"))
    monkeypatch.setenv("FAKE_IPMI_WATTS", "1234")
    sensor = ipmi.IpmiSensor(EnergyConfig.from_dict({"ipmi": {"timeout_s": 3, "retries": 0, "interval_s": 5}}).ipmi)
    assert (sensor.timeout_s, sensor.retries, sensor.interval_s) == (3.0, 0, 5.0)
    sensor.open()
    assert sensor.read()[0].value == 1234.0


def test_freeipmi_ipmi_dcmi(fake_ipmi, monkeypatch):
    sensor = ipmi.IpmiSensor(IpmiConfig(binary="ipmi-dcmi", extra_args=["-D", "LAN_2_0"]))
    sensor.open()
    assert sensor.read() == [Reading("node", "power", 251.0, "W", "node")]
    assert fake_ipmi.read_text().splitlines()[-1] == "-D LAN_2_0 --get-system-power-statistics"
    assert sensor.metadata()["tool"] == "freeipmi"

    monkeypatch.setenv("FAKE_IPMI_MODE", "notavail")
    with pytest.raises(SensorUnavailable, match="not supported"):
        ipmi.IpmiSensor(IpmiConfig(binary="ipmi-dcmi", retries=0)).open()


def test_ipmi_binary_not_found_or_not_runnable(fake_ipmi, tmp_path):
    with pytest.raises(SensorUnavailable, match="binary not found"):
        ipmi.IpmiSensor(IpmiConfig(binary=str(tmp_path / "no-such-ipmitool"))).open()
    with pytest.raises(SensorUnavailable, match="binary not found"):
        ipmi.IpmiSensor(IpmiConfig(binary="ipmitool-that-is-not-installed")).open()
    broken = tmp_path / "bin" / "broken-ipmitool"
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o755)
    with pytest.raises(SensorUnavailable, match="binary not runnable: cannot run broken-ipmitool"):
        ipmi.IpmiSensor(IpmiConfig(binary=str(broken))).open()


@pytest.mark.parametrize("persistent", [True, False])
@pytest.mark.parametrize(
    "mode, reason",
    [
        ("nodcmi", "DCMI power reading not supported"),
        ("deactivated", "DCMI power reading not supported"),
        ("nodevice", "BMC not answering"),
        ("session", "BMC not answering"),
        ("garbage", "unexpected DCMI output"),
    ],
)
def test_ipmi_open_failures_say_why(fake_ipmi, mode, reason, persistent):
    set_ipmi_mode(mode)
    sensor = ipmi.IpmiSensor(IpmiConfig(retries=1, persistent=persistent))
    with pytest.raises(SensorUnavailable, match=reason) as info:
        sensor.open()
    assert "2 tries" in str(info.value)
    # two tries: with a shell, each in a fresh one after an error, and when the shell cannot even open
    # the BMC, a process per reading; without, a process each
    calls = fake_ipmi.read_text().splitlines()
    if not persistent:
        assert calls == ["dcmi power reading"] * 2
    elif mode in ("nodevice", "session"):
        assert calls == ["shell"] + ["dcmi power reading"] * 2
    else:
        assert calls == ["shell", "dcmi power reading", "exit"] * 2
    sensor.close()


@pytest.mark.parametrize("persistent", [True, False])
def test_ipmi_stall_is_cut_by_timeout(fake_ipmi, persistent):
    # The fake's `sleep 30` is a grandchild holding the pipes: one process per reading has to kill
    # the group to end the wait; the shell stops waiting at its deadline.
    set_ipmi_mode("stall")
    sensor = ipmi.IpmiSensor(IpmiConfig(timeout_s=0.5, retries=1, persistent=persistent))
    start = time.monotonic()
    with pytest.raises(SensorUnavailable, match="BMC not answering: no answer within 0.5 s"):
        sensor.open()
    assert time.monotonic() - start < 0.5 * 2 + 3


@pytest.mark.parametrize("persistent", [True, False])
def test_ipmi_read_errors_after_open(fake_ipmi, persistent):
    sensor = ipmi.IpmiSensor(IpmiConfig(retries=0, persistent=persistent))
    sensor.open()
    set_ipmi_mode("garbage")
    with pytest.raises(ipmi.IpmiError, match="no power reading"):
        sensor.read()
    set_ipmi_mode("session")
    with pytest.raises(ipmi.IpmiError, match="Unable to establish IPMI v2 / RMCP\\+ session"):
        sensor.read()
    set_ipmi_mode("ok")
    assert sensor.read()[0].value == 251.0
    sensor.close()


@pytest.mark.parametrize("persistent", [True, False])
def test_ipmi_retries_a_flaky_bmc(fake_ipmi, monkeypatch, tmp_path, persistent):
    set_ipmi_mode("flaky")
    monkeypatch.setenv("FAKE_IPMI_FAIL_FIRST", "2")
    sensor = ipmi.IpmiSensor(IpmiConfig(retries=2, persistent=persistent))
    sensor.open()  # fails twice, then answers
    assert (tmp_path / "count").read_text().strip() == "3"
    sensor.close()

    (tmp_path / "count").write_text("0\n")
    with pytest.raises(SensorUnavailable, match="BMC not answering"):
        ipmi.IpmiSensor(IpmiConfig(retries=1, persistent=persistent)).open()


@pytest.mark.parametrize(
    "binary, args, secrets",
    [
        (
            "ipmitool",
            ["-I", "lanplus", "-H", "bmc-host.example", "-U", "admin-user"],
            ["bmc-host.example", "admin-user"],
        ),
        (
            "ipmitool",
            # the Kg key by -K (from $IPMI_KGKEY): -y/-k KEY on the command line is refused (test_secrets.py)
            ["-I", "lanplus", "-Hbmc-host.example", "-Uadmin-user", "-K"],
            ["bmc-host.example", "admin-user"],
        ),
        (
            "ipmi-dcmi",
            ["-h", "bmc-host.example", "--username=admin-user"],
            ["bmc-host.example", "admin-user"],
        ),
    ],
)
def test_ipmi_credentials_never_leak(fake_ipmi, monkeypatch, caplog, binary, args, secrets):
    # "leaky" makes the fake tool echo all its arguments in its error, the worst case for redaction.
    caplog.set_level(logging.DEBUG)
    sensor = ipmi.IpmiSensor(IpmiConfig(binary=binary, extra_args=args, retries=0))
    sensor.open()
    assert fake_ipmi.read_text().split()[: len(args)] == args  # the tool really got them
    texts = [json.dumps(sensor.metadata())]

    monkeypatch.setenv("FAKE_IPMI_MODE", "leaky")  # ipmi-dcmi, one process per reading
    set_ipmi_mode("leaky")  # the running ipmitool shell
    with pytest.raises(ipmi.IpmiError) as info:
        sensor.read()
    texts.append(str(info.value))
    with pytest.raises(SensorUnavailable) as info:
        ipmi.IpmiSensor(IpmiConfig(binary=binary, extra_args=args, retries=0)).open()
    texts.append(str(info.value))
    texts.append(caplog.text)
    for text in texts:
        for secret in secrets:
            assert secret not in text, (secret, text)
    assert "***" in texts[0] and "***" in texts[1]
    assert "connection timeout" in texts[1] or "RMCP+ session" in texts[1]  # the rest of the message survives


@pytest.mark.parametrize("binary, args", [("ipmitool", ["-P", "pw"]), ("ipmitool", ["-Ppw"]),
                                          ("ipmi-dcmi", ["--password=pw"]), ("ipmi-dcmi", ["-p", "pw"])])
def test_ipmi_password_on_the_command_line_is_refused(binary, args):
    with pytest.raises(SensorConfigError, match="password_file.*password_env"):
        ipmi.IpmiSensor(IpmiConfig(binary=binary, extra_args=["-I", "lanplus", *args]))
    ipmi.IpmiSensor(IpmiConfig(extra_args=["-p", "623"]))  # ipmitool's -p is the remote port


def test_ipmi_password_from_a_file_or_a_variable_never_in_argv(fake_ipmi, monkeypatch, tmp_path):
    secret_file = tmp_path / "bmc.pw"
    secret_file.write_text("s3cret-pw\n")
    sensor = ipmi.IpmiSensor(IpmiConfig(extra_args=["-H", "bmc"], password_file=str(secret_file), retries=0))
    sensor.open()
    assert fake_ipmi.read_text().split()[:4] == ["-H", "bmc", "-f", str(secret_file)]
    sensor.close()
    monkeypatch.setenv("MY_BMC_PW", "s3cret-pw")
    config = IpmiConfig(extra_args=("-H", "bmc"), password_env="MY_BMC_PW", retries=0, persistent=False)
    sensor = ipmi.IpmiSensor(config)
    assert sensor._env["IPMI_PASSWORD"] == "s3cret-pw" and "s3cret-pw" not in " ".join(sensor._argv())
    assert "-E" in sensor._argv()
    with pytest.raises(SensorConfigError, match="NO_SUCH_VAR"):
        ipmi.IpmiSensor(IpmiConfig(password_env="NO_SUCH_VAR"))


def test_ipmi_secret_values_and_redact():
    args = ["-I", "lanplus", "-H", "bmc7", "-U", "root", "-Ppw-root-7", "-L", "USER"]
    secrets = ipmi.secret_values(args, "ipmitool")
    assert secrets == ["bmc7", "root", "pw-root-7"]
    # longest first, so a secret containing another is removed whole
    assert ipmi.redact("login root@bmc7 with pw-root-7", secrets) == "login ***@*** with ***"
    assert ipmi.secret_values(["--hostname=h", "-u", "u", "-p", "p", "-D", "LAN_2_0"], "freeipmi") == ["h", "u", "p"]


@pytest.mark.parametrize("persistent", [True, False])
@pytest.mark.parametrize("mode", ["flood", "binary"])
def test_ipmi_flooding_or_undecodable_tool_is_a_failed_reading(fake_ipmi, monkeypatch, persistent, mode):
    """A tool that floods its output is cut at MAX_ANSWER and killed, within the timeout; bytes that are
    not UTF-8 are a failed reading; both retried, never a crash or a sidecar that grows without end."""
    sensor = ipmi.IpmiSensor(IpmiConfig(retries=1, timeout_s=5, persistent=persistent))
    sensor.open()
    monkeypatch.setenv("FAKE_IPMI_MODE", mode)
    set_ipmi_mode(mode)
    t0 = time.monotonic()
    with pytest.raises(ipmi.IpmiError, match="2 tries") as info:
        sensor.read()
    assert time.monotonic() - t0 < 5 and info.value.kind in ("parse", "exit")
    sensor.close()
    assert not ipmi._IN_FLIGHT
