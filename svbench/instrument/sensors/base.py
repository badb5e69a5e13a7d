"""What every sensor is: something the sidecar opens once and then reads at its own interval.

A sensor that cannot work on this machine raises :class:`SensorUnavailable` from ``open()`` with a
short reason ("no /sys/class/powercap", "permission: energy_uj is root-only", "pynvml: no GPU");
the sidecar records that reason in the trace metadata and goes on without it. A missing sensor is
therefore an absent channel, never a channel of zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from svbench.errors import UserError


class SensorUnavailable(RuntimeError):
    """The sensor cannot be used here; ``str(exc)`` says why in a few words."""


class SensorConfigError(UserError):
    """A config value the sensor cannot work with; the message names the key (``energy.rapl.interval_s``)."""


@dataclass(frozen=True)
class Reading:
    """One value read from one channel of a sensor.

    quantity: ``energy`` for a monotonically increasing counter (joules, already unwrapped) or
    ``power`` (watts); anything else (``utilisation`` %, ``memory`` bytes, ``cpu_time`` s) is kept in
    the trace for context but is not integrated by the join. ``counter_break`` (J) marks the read where
    an energy counter lost continuity (reset, step back, hidden wraps): see :mod:`.counter`.
    component: what the channel measures, one of ``gpu``, ``cpu``, ``dram``, ``node``, ``other``.
    estimated: true when the value comes from a model rather than a physical sensor.
    """

    channel: str
    quantity: str
    value: float
    unit: str
    component: str = "other"
    estimated: bool = False


@runtime_checkable
class Sensor(Protocol):
    name: str  # "nvml", "rapl", "ipmi", "estimate"
    interval_s: float

    def open(self) -> None:
        """Find the hardware; raise SensorUnavailable(reason) if it is not usable."""

    def read(self) -> list[Reading]:
        """Take one reading of every channel. May raise; the sidecar records the error as a gap."""

    def metadata(self) -> dict:
        """Static facts worth keeping with the trace (device names, UUIDs, driver, domains)."""

    def close(self) -> None:
        """Release handles. Must be safe to call after a failed open()."""


@dataclass
class SensorStatus:
    """What the sidecar learned about one sensor: used, or why not."""

    name: str
    available: bool
    reason: str = ""
    metadata: dict = field(default_factory=dict)
