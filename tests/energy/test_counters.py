"""Energy counters you can trust: wraps unwrapped, resets, steps back and hidden wraps marked as breaks.

RAPL against a fake powercap tree (rewritten in place: the sensor keeps energy_uj open and preads it),
NVML against the fake pynvml; time is a fake monotonic clock, so elapsed times are exact.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fakes.powercap import INTEL_MAX_RANGE_UJ, PowercapTree

from svbench.errors import UserError
from svbench.instrument.config import EnergyConfig, NvmlConfig, RaplConfig
from svbench.instrument.sensors import nvml, rapl
from svbench.instrument.sensors.base import Reading, SensorConfigError
from svbench.instrument.sensors.counter import BREAK_QUANTITY, ENERGY_QUANTITY, CounterTracker, counter_readings

UUID_A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(time, "monotonic", c)  # the sensors call time.monotonic()
    return c


def rows(readings: list[Reading], channel: str) -> dict[str, float]:
    return {r.quantity: r.value for r in readings if r.channel == channel}


def package_zone(tmp_path: Path, energy_uj: int, max_range_uj: int = INTEL_MAX_RANGE_UJ,
                 constraints_uw: tuple[int, ...] = ()) -> PowercapTree:
    tree = PowercapTree(tmp_path)
    folder = tree.add_zone("intel-rapl:0", "package-0", energy_uj=energy_uj, max_range_uj=max_range_uj)
    for n, uw in enumerate(constraints_uw):
        (folder / f"constraint_{n}_max_power_uw").write_text(f"{uw}\n")
    return tree


# --- the tracker on its own ----------------------------------------------------------------------


def test_tracker_rules_wrap_reset_step_back_jump_hidden_wraps():
    # a 100 J counter (µJ) of a channel of at most 10 W
    tr = CounterTracker(90_000_000, 0.0, raw_per_j=1e6, range_raw=100_000_000, max_power_w=10.0)
    assert tr.update(95_000_000, 1.0).energy_j == pytest.approx(5.0)
    step = tr.update(3_000_000, 2.0)  # 8 J across the top in 1 s: a wrap
    assert (step.energy_j, step.broke) == (pytest.approx(13.0), False)
    step = tr.update(1_000_000, 3.0)  # back 2 J (a wrap would be 98 J in 1 s): a step back
    assert (step.energy_j, step.break_j) == (pytest.approx(13.0), pytest.approx(-2.0))
    assert tr.update(4_000_000, 4.0).energy_j == pytest.approx(16.0)  # counts from the new raw value
    step = tr.update(40_000_000, 5.0)  # 36 J in 1 s at 10 W: implausible
    assert (step.energy_j, step.break_j) == (pytest.approx(16.0), pytest.approx(36.0))
    step = tr.update(45_000_000, 15.0)  # 10 s at 10 W could hold a whole wrap: unknowable
    assert (step.energy_j, step.break_j) == (pytest.approx(16.0), pytest.approx(5.0))
    assert tr.update(46_000_000, 16.0).energy_j == pytest.approx(17.0)
    assert tr.breaks == 3


def test_tracker_without_range_every_drop_breaks_and_without_power_drops_wrap():
    tr = CounterTracker(5_000, 0.0, raw_per_j=1e3, range_raw=None, max_power_w=None)
    assert tr.update(1_000_000, 0.001).energy_j == pytest.approx(995.0)  # no bound: no jump questioned
    step = tr.update(999_999, 0.002)
    assert step.broke and step.break_j == pytest.approx(-0.001) and step.energy_j == pytest.approx(995.0)
    legacy = CounterTracker(9, 0.0, raw_per_j=1.0, range_raw=10, max_power_w=None)
    assert legacy.update(1, 100.0).energy_j == 2.0  # no power known: a drop is all it can be, one wrap


def test_counter_readings_contract():
    assert (ENERGY_QUANTITY, BREAK_QUANTITY) == ("energy", "counter_break")
    tr = CounterTracker(100, 0.0, raw_per_j=1.0, range_raw=None, max_power_w=1.0)
    assert counter_readings("gpu0", "gpu", tr.update(101, 1.0)) == [Reading("gpu0", "energy", 1.0, "J", "gpu")]
    assert counter_readings("gpu0", "gpu", tr.update(50, 2.0)) == [
        Reading("gpu0", "energy", 1.0, "J", "gpu"),
        Reading("gpu0", "counter_break", -51.0, "J", "gpu"),
    ]


# --- RAPL --------------------------------------------------------------------------------------


def test_rapl_counter_reset_is_a_break_not_a_wrap(tmp_path, clock):
    tree = package_zone(tmp_path, energy_uj=200_000_000_000)  # 200 kJ into a 262 kJ range
    sensor = rapl.RaplSensor(RaplConfig(root=str(tmp_path)))
    sensor.open()
    clock.advance(0.5)
    tree.set_energy("intel-rapl:0", 200_010_000_000)
    assert rows(sensor.read(), "package-0") == {"energy": pytest.approx(10.0)}
    clock.advance(0.5)
    tree.set_energy("intel-rapl:0", 5_000_000)  # reset (e.g. CPU hot-plug): not a wrap worth 62 kJ
    got = sensor.read()
    assert [(r.quantity, r.unit, r.component) for r in got] == [("energy", "J", "cpu"), ("counter_break", "J", "cpu")]
    assert rows(got, "package-0") == {"energy": pytest.approx(10.0), "counter_break": pytest.approx(-200_005.0)}
    clock.advance(0.5)
    tree.set_energy("intel-rapl:0", 25_000_000)
    assert rows(sensor.read(), "package-0") == {"energy": pytest.approx(30.0)}  # counts on from the reset
    meta = sensor.metadata()["channels"]["package-0"]
    assert meta["counter_breaks"] == 1
    assert (meta["max_power_w"], meta["max_power_source"]) == (1000.0, "config energy.rapl.max_power_w")
    sensor.close()


def test_rapl_small_step_back_is_a_break(tmp_path, clock):
    tree = package_zone(tmp_path, energy_uj=1_000_000_000)
    sensor = rapl.RaplSensor(RaplConfig(root=str(tmp_path), interval_s=0.1))
    sensor.open()
    clock.advance(0.1)
    tree.set_energy("intel-rapl:0", 1_002_000_000)
    assert rows(sensor.read(), "package-0") == {"energy": pytest.approx(2.0)}
    clock.advance(0.1)
    tree.set_energy("intel-rapl:0", 1_001_999_000)  # 1 mJ back
    assert rows(sensor.read(), "package-0") == {"energy": pytest.approx(2.0), "counter_break": pytest.approx(-0.001)}
    clock.advance(0.1)
    tree.set_energy("intel-rapl:0", 1_003_999_000)
    assert rows(sensor.read(), "package-0") == {"energy": pytest.approx(4.0)}
    sensor.close()


def test_rapl_true_wrap_at_high_power_is_unwrapped(tmp_path, clock):
    # PL1 250 W, PL2 300 W: the largest constraint bounds the zone. 145 J across the top in 0.5 s (290 W).
    tree = package_zone(tmp_path, energy_uj=INTEL_MAX_RANGE_UJ - 100_000_000,
                        constraints_uw=(250_000_000, 300_000_000, 0))
    sensor = rapl.RaplSensor(RaplConfig(root=str(tmp_path), max_power_w=50))  # the constraint wins over the config
    sensor.open()
    clock.advance(0.5)
    tree.set_energy("intel-rapl:0", 45_000_000)
    assert rows(sensor.read(), "package-0") == {"energy": pytest.approx(145.0)}
    meta = sensor.metadata()["channels"]["package-0"]
    assert (meta["max_power_w"], meta["max_power_source"]) == (300.0, "constraint_1_max_power_uw")
    assert meta["counter_breaks"] == 0
    sensor.close()


def test_rapl_interval_that_could_hold_two_wraps_is_a_break(tmp_path, clock):
    # 100 J range at 2 W (constraint): wraps every 50 s. A read 120 s late could hide two wraps.
    tree = package_zone(tmp_path, energy_uj=10_000_000, max_range_uj=100_000_000, constraints_uw=(2_000_000,))
    sensor = rapl.RaplSensor(RaplConfig(root=str(tmp_path), interval_s=0.5))
    sensor.open()
    clock.advance(0.5)
    tree.set_energy("intel-rapl:0", 11_000_000)
    assert rows(sensor.read(), "package-0") == {"energy": pytest.approx(1.0)}
    clock.advance(120.0)  # the sidecar was stopped; the counter went round twice and 40 J more
    tree.set_energy("intel-rapl:0", 51_000_000)
    assert rows(sensor.read(), "package-0") == {"energy": pytest.approx(1.0), "counter_break": pytest.approx(40.0)}
    clock.advance(0.5)
    tree.set_energy("intel-rapl:0", 52_000_000)
    assert rows(sensor.read(), "package-0") == {"energy": pytest.approx(2.0)}
    sensor.close()


def test_rapl_refuses_interval_over_a_quarter_wrap_period(tmp_path):
    # 60 J range at the default 1000 W: wraps every 60 ms, so 50 ms is far too slow.
    (tmp_path / "small").mkdir()
    package_zone(tmp_path / "small", energy_uj=0, max_range_uj=60_000_000)
    sensor = rapl.RaplSensor(RaplConfig(root=str(tmp_path / "small"), interval_s=0.05))
    with pytest.raises(SensorConfigError, match=r"energy\.rapl\.interval_s") as info:
        sensor.open()
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "intel-rapl:0" in message and "package-0" in message and "0.06 s" in message, message
    sensor.close()  # nothing left open
    ok = rapl.RaplSensor(RaplConfig(root=str(tmp_path / "small"), interval_s=0.01))  # 10 ms ≤ 15 ms
    ok.open()
    ok.close()

    # A real Intel package limited to 350 W wraps every ~749 s: 200 s is too slow, 100 s is fine.
    (tmp_path / "intel").mkdir()
    package_zone(tmp_path / "intel", energy_uj=0, constraints_uw=(350_000_000,))
    with pytest.raises(SensorConfigError, match=r"energy\.rapl\.interval_s = 200 s .*749 s"):
        rapl.RaplSensor(RaplConfig(root=str(tmp_path / "intel"), interval_s=200)).open()
    ok = rapl.RaplSensor(RaplConfig(root=str(tmp_path / "intel"), interval_s=100))
    ok.open()
    ok.close()


def test_rapl_max_power_key():
    assert rapl.RaplSensor().max_power_w == 1000.0
    assert rapl.RaplSensor(EnergyConfig.from_dict({"rapl": {"max_power_w": 400}}).rapl).max_power_w == 400.0
    for bad in (0, -5, "lots", None, True):
        with pytest.raises(UserError, match=r"energy\.rapl\.max_power_w"):
            EnergyConfig.from_dict({"rapl": {"max_power_w": bad}})


# --- NVML --------------------------------------------------------------------------------------


def test_nvml_counter_reset_is_a_break_not_negative_energy(fake_nvml, clock):
    gpu = fake_nvml.add_gpu(UUID_A, energy_mj=5_000_000, power_limits_mw=(100_000, 700_000))
    sensor = nvml.NvmlSensor()
    sensor.open()
    clock.advance(0.1)
    gpu["energy_mj"] += 30_000  # 300 W
    assert rows(sensor.read(), "gpu0")["energy"] == pytest.approx(30.0)
    clock.advance(0.1)
    gpu["energy_mj"] = 1_000  # driver reloaded: the counter starts again near zero
    got = rows(sensor.read(), "gpu0")
    assert (got["energy"], got["counter_break"]) == (pytest.approx(30.0), pytest.approx(-5_029.0))
    clock.advance(0.1)
    gpu["energy_mj"] += 20_000
    got = rows(sensor.read(), "gpu0")
    assert got["energy"] == pytest.approx(50.0) and "counter_break" not in got
    meta = sensor.metadata()["devices"]["gpu0"]
    assert (meta["max_power_w"], meta["max_power_source"]) == (700.0, "nvmlDeviceGetPowerManagementLimitConstraints")
    assert meta["counter_breaks"] == 1
    sensor.close()


def test_nvml_implausible_jump_and_config_fallback(fake_nvml, clock):
    gpu = fake_nvml.add_gpu(UUID_A, energy_mj=0)  # no power limits: the configured 1500 W bounds it
    sensor = nvml.NvmlSensor(NvmlConfig(interval_s=0.1))
    sensor.open()
    clock.advance(0.1)
    gpu["energy_mj"] = 500_000  # 500 J in 0.1 s: more than 1.1 × 1500 W × (0.1 s + UPDATE_S 0.1 s) = 330 J
    got = rows(sensor.read(), "gpu0")
    assert (got["energy"], got["counter_break"]) == (0.0, pytest.approx(500.0))
    clock.advance(0.1)
    gpu["energy_mj"] += 100_000  # 1 kW: plausible
    assert rows(sensor.read(), "gpu0")["energy"] == pytest.approx(100.0)
    meta = sensor.metadata()["devices"]["gpu0"]
    assert (meta["max_power_w"], meta["max_power_source"]) == (1500.0, "config energy.nvml.max_power_w")
    assert any("power limit constraints" in n for n in meta["notes"])
    sensor.close()
    assert nvml.NvmlSensor(EnergyConfig.from_dict({"nvml": {"max_power_w": 800}}).nvml).max_power_w == 800.0
    with pytest.raises(UserError, match=r"energy\.nvml\.max_power_w"):
        EnergyConfig.from_dict({"nvml": {"max_power_w": 0}})
