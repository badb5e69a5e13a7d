"""CPU package and DRAM energy from RAPL, read through the Linux powercap files.

Layout (``/sys/class/powercap``, flat symlinks to the same zones):

    intel-rapl:0/name        package-0        one zone per socket (or ``package-0-die-1`` per die)
    intel-rapl:0/energy_uj   counter in µJ, wraps at intel-rapl:0/max_energy_range_uj
    intel-rapl:0:0/name      core | uncore | dram   sub-zones of socket 0
    intel-rapl:1/name        psys             platform zone on some client parts

AMD Zen parts are served by the same ``intel_rapl_msr`` driver and appear under the same
``intel-rapl`` names (package, core; no DRAM); there is no ``amd-rapl`` powercap type.
``intel-rapl-mmio:N`` mirrors the package zone on recent Intel parts and is skipped so a package is
never counted twice.

Nesting: psys ⊇ package ⊇ core/uncore. DRAM is not part of the package figure, so package + dram
per socket may be summed; core/uncore are skipped (listed in metadata) and psys is kept as a
separate channel with component ``other``.

Each ``energy_uj`` is opened once, in ``open()``, and re-read with ``pread`` at offset 0: a sysfs
attribute is produced afresh by the kernel on every read from offset 0, so the descriptor kept open
gives the current counter without an open/close per reading (the sidecar reads it ten times a second).

Unwrapping (:mod:`svbench.instrument.sensors.counter`): a zone's largest plausible power is the largest
``constraint_N_max_power_uw`` it has (> 0), else the configured ``max_power_w``. From it follow the
wrap period (``max_energy_range_uj`` / power), which ``interval_s`` must stay well below, and the
most a counter can advance between two reads, which tells a wrap from a reset or a step back.

pyRAPL is not used: it hard-codes ``/sys/class/powercap/intel-rapl``, cannot be pointed at a test
tree, has no psys and no wrap handling across a long run, and only offers begin/end measurements.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from svbench.instrument.config import RaplConfig
from svbench.instrument.sensors.base import Reading, SensorConfigError, SensorUnavailable
from svbench.instrument.sensors.counter import CounterTracker, counter_readings

DEFAULT_ROOT = "/sys/class/powercap"
_ZONE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")
_PERMISSION_HINT = "is root-only since Linux 5.10 (CVE-2020-8694)"
_CONSTRAINT = re.compile(r"^constraint_(\d+)_max_power_uw$")
# RAPL updates its counters about every millisecond; the rest allows for a sidecar preempted between
# taking the time and reading the counters.
UPDATE_S = 0.01


@dataclass
class _Channel:
    channel: str
    component: str
    zone: Path
    max_range_uj: int
    fd: int = -1  # energy_uj, kept open
    max_power_w: float | None = None
    max_power_source: str = ""
    tracker: CounterTracker | None = None


def _read_text(path: Path) -> str:
    with open(path) as f:
        return f.read().strip()


def _read_int(path: Path) -> int:
    return int(_read_text(path))


def _pread_int(fd: int) -> int:
    """The counter behind a kept-open sysfs descriptor (int() takes the bytes, newline and all)."""
    return int(os.pread(fd, 32, 0))


def constraint_max_power(zone: Path) -> tuple[float, str] | None:
    """The largest ``constraint_N_max_power_uw`` of a zone (W) and its file name; None if none is > 0.

    The largest, not constraint_0: the short-term and peak limits (PL2, PL4) lie above the long-term one.
    """
    best: tuple[float, str] | None = None
    for entry in zone.iterdir():
        if not _CONSTRAINT.match(entry.name):
            continue
        try:
            watts = _read_int(entry) / 1e6
        except (OSError, ValueError):
            continue  # unreadable or empty: as if absent
        if watts > 0 and (best is None or watts > best[0]):
            best = (watts, entry.name)
    return best


class RaplSensor:
    """RAPL energy counters per socket: ``package-N`` (cpu), ``dram-N`` (dram), ``psys`` (other).

    Every reading is quantity ``energy`` in joules, cumulative since ``open()``, unwrapped; a read
    where a counter lost continuity adds a ``counter_break`` row (see :mod:`.counter`).
    ``max_power_w`` bounds the zones without a constraint file: at 1000 W (the default) an Intel package
    (262 kJ) wraps every 262 s and an AMD one (65.5 kJ) every 65 s, so ``interval_s`` up to 16 s is accepted,
    yet a reset is still told from a wrap.
    """

    name = "rapl"

    def __init__(self, config: RaplConfig | None = None) -> None:
        config = config or RaplConfig()
        self.root = Path(config.root or os.environ.get("SVBENCH_POWERCAP_ROOT") or DEFAULT_ROOT)
        self.interval_s = config.interval_s
        self.max_power_w: float | None = config.max_power_w
        self._channels: list[_Channel] = []
        self._skipped: dict[str, str] = {}

    def open(self) -> None:
        if not self.root.is_dir():
            raise SensorUnavailable(f"no powercap folder at {self.root}")
        self._skipped = {}
        try:
            zones = self._discover()
        except OSError as exc:
            raise SensorUnavailable(f"cannot list {self.root}: {exc}") from exc
        if not zones:
            raise SensorUnavailable(f"no intel-rapl zones under {self.root}")
        channels: list[_Channel] = []
        for channel, component, zone in zones:
            energy = zone / "energy_uj"
            fd = -1
            try:
                fd = os.open(energy, os.O_RDONLY | os.O_CLOEXEC)
                raw = _pread_int(fd)
                max_range = _read_int(zone / "max_energy_range_uj")
            except (OSError, ValueError) as exc:
                if fd >= 0:
                    os.close(fd)
                _close_all(channels)
                if isinstance(exc, PermissionError):
                    raise SensorUnavailable(f"permission: {energy} {_PERMISSION_HINT}") from exc
                raise SensorUnavailable(f"unreadable {energy}: {exc}") from exc
            ch = _Channel(channel, component, zone, max_range, fd=fd)
            ch.max_power_w, ch.max_power_source = self._max_power(zone)
            ch.tracker = CounterTracker(raw, time.monotonic(), raw_per_j=1e6, range_raw=max_range,
                                        max_power_w=ch.max_power_w, update_s=UPDATE_S)
            channels.append(ch)
        try:
            self._check_interval(channels)
        except SensorConfigError:
            _close_all(channels)
            raise
        self._channels = channels

    def _max_power(self, zone: Path) -> tuple[float | None, str]:
        try:
            found = constraint_max_power(zone)
        except OSError:
            found = None
        if found is not None:
            return found
        if self.max_power_w is not None:
            return self.max_power_w, "config energy.rapl.max_power_w"
        return None, "none (unbounded: every drop counts as one wrap)"

    def _check_interval(self, channels: list[_Channel]) -> None:
        """Refuse an interval that could miss a wrap: a quarter of the shortest wrap period at most."""
        for ch in channels:
            if not ch.max_power_w:
                continue
            period_s = ch.max_range_uj / 1e6 / ch.max_power_w
            if self.interval_s > period_s / 4:
                raise SensorConfigError(
                    f"energy.rapl.interval_s = {self.interval_s:g} s is too long for zone {ch.zone.name} "
                    f"({ch.channel}): its counter wraps every {period_s:.3g} s at {ch.max_power_w:g} W "
                    f"({ch.max_power_source}); use at most a quarter of that, {period_s / 4:.3g} s")

    def _discover(self) -> list[tuple[str, str, Path]]:
        """(channel, component, zone folder) for every zone worth reading, in a stable order."""
        top: dict[int, tuple[str, Path]] = {}
        subs: list[tuple[int, int, Path]] = []
        for entry in self.root.iterdir():
            m = _ZONE.match(entry.name)
            if not m:
                if entry.name.startswith("intel-rapl-mmio:"):
                    self._skipped[entry.name] = "MMIO mirror of the package zone, not read"
                continue  # the control-type folder "intel-rapl", other powercap drivers
            if m.group(2) is None:
                top[int(m.group(1))] = (self._zone_name(entry), entry)
            else:
                subs.append((int(m.group(1)), int(m.group(2)), entry))
        # sysfs links every zone flat into the class folder; a copied tree may have sub-zones only
        # nested inside their package, so look there too.
        seen = {(p, s) for p, s, _ in subs}
        for _, folder in top.values():
            for entry in folder.iterdir():
                m = _ZONE.match(entry.name)
                if m and m.group(2) is not None and (int(m.group(1)), int(m.group(2))) not in seen:
                    subs.append((int(m.group(1)), int(m.group(2)), entry))

        zones: list[tuple[str, str, Path]] = []
        for index in sorted(top):
            name, folder = top[index]
            if name.startswith("package-"):
                zones.append((name, "cpu", folder))
            elif name.startswith("psys"):
                # psys covers the package and more: a separate figure, never added to package.
                zones.append((name, "other", folder))
            else:
                self._skipped[folder.name] = f"unknown top-level zone {name!r}"
        for parent, _, folder in sorted(subs, key=lambda t: (t[0], t[1])):
            name = self._zone_name(folder)
            parent_name = top.get(parent, (f"package-{parent}", None))[0]
            socket = parent_name.removeprefix("package-")
            if name == "dram":
                zones.append((f"dram-{socket}", "dram", folder))
            else:
                # core/uncore are inside the package figure: reading them would invite double counting.
                self._skipped[folder.name] = f"{name} of {parent_name}: nested in package, not read"
        return zones

    @staticmethod
    def _zone_name(folder: Path) -> str:
        try:
            return _read_text(folder / "name")
        except OSError:
            return folder.name

    def read(self) -> list[Reading]:
        readings: list[Reading] = []
        now = time.monotonic()  # before the preads: the tracker's UPDATE_S covers the time they take
        for ch in self._channels:
            assert ch.tracker is not None
            step = ch.tracker.update(_pread_int(ch.fd), now)
            readings.extend(counter_readings(ch.channel, ch.component, step))
        return readings

    def metadata(self) -> dict:
        return {
            "root": str(self.root),
            "channels": {
                ch.channel: {
                    "zone": ch.zone.name,
                    "component": ch.component,
                    "max_energy_range_uj": ch.max_range_uj,
                    "max_power_w": ch.max_power_w,
                    "max_power_source": ch.max_power_source,
                    "counter_breaks": ch.tracker.breaks if ch.tracker else 0,
                }
                for ch in self._channels
            },
            "skipped_zones": dict(self._skipped),
            "nesting": "psys includes package; package includes core/uncore; dram is separate from package",
        }

    def close(self) -> None:
        channels, self._channels = self._channels, []
        _close_all(channels)


def _close_all(channels: list[_Channel]) -> None:
    for ch in channels:
        if ch.fd >= 0:
            try:
                os.close(ch.fd)
            except OSError:
                pass
            ch.fd = -1

