"""Sensor families. Each module has ``make(config) -> Sensor``; the sidecar opens what works here."""

from __future__ import annotations

import importlib

from svbench.energy.sensors.base import Reading, Sensor, SensorStatus, SensorUnavailable
from svbench.energy.sensors.estimate import EstimateSensor
from svbench.errors import UserError

__all__ = ["Reading", "Sensor", "SensorStatus", "SensorUnavailable", "EstimateSensor", "physical_sensors"]

PHYSICAL = ("nvml", "rapl", "ipmi")


def physical_sensors(config: dict) -> list[Sensor]:
    """The physical sensors named in ``config["sensors"]`` (default: all three), not yet opened."""
    out = []
    for name in config.get("sensors", list(PHYSICAL)):
        if name not in PHYSICAL:
            raise UserError(f"config key energy.sensors: unknown sensor {name!r} (known: {', '.join(PHYSICAL)})")
        module = importlib.import_module(f"svbench.energy.sensors.{name}")
        out.append(module.make(config.get(name) or {}))
    return out
