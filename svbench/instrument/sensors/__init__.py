"""Sensor families, and the one registry of the physical ones: name → how to build it from the typed config."""

from __future__ import annotations

from collections.abc import Callable

from svbench.errors import UserError
from svbench.instrument.config import EnergyConfig
from svbench.instrument.sensors.base import Reading, Sensor, SensorStatus, SensorUnavailable
from svbench.instrument.sensors.estimate import EstimateSensor
from svbench.instrument.sensors.ipmi import IpmiSensor
from svbench.instrument.sensors.nvml import NvmlSensor
from svbench.instrument.sensors.rapl import RaplSensor

__all__ = ["Reading", "Sensor", "SensorStatus", "SensorUnavailable", "EstimateSensor", "SENSORS",
           "physical_sensors"]

# the names are the schema's energy.sensors enum (a test holds them equal)
SENSORS: dict[str, Callable[[EnergyConfig], Sensor]] = {
    "nvml": lambda config: NvmlSensor(config.nvml),
    "rapl": lambda config: RaplSensor(config.rapl),
    "ipmi": lambda config: IpmiSensor(config.ipmi),
}


def physical_sensors(config: EnergyConfig) -> list[Sensor]:
    """The physical sensors named in ``config.sensors``, built but not yet opened."""
    out = []
    for name in config.sensors:
        if name not in SENSORS:
            raise UserError(f"config key energy.sensors: unknown sensor {name!r} (known: {', '.join(SENSORS)})")
        out.append(SENSORS[name](config))
    return out
