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

pyRAPL is not used: it hard-codes ``/sys/class/powercap/intel-rapl``, cannot be pointed at a test
tree, has no psys and no wrap handling across a long run, and only offers begin/end measurements.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from svbench.energy.sensors.base import Reading, SensorUnavailable

DEFAULT_ROOT = "/sys/class/powercap"
_ZONE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")
_PERMISSION_HINT = "is root-only since Linux 5.10 (CVE-2020-8694)"


@dataclass
class _Channel:
    channel: str
    component: str
    zone: Path
    max_range_uj: int
    fd: int = -1  # energy_uj, kept open
    first_raw: int = 0
    last_raw: int = 0
    wraps: int = 0


def _read_text(path: Path) -> str:
    with open(path) as f:
        return f.read().strip()


def _read_int(path: Path) -> int:
    return int(_read_text(path))


def _pread_int(fd: int) -> int:
    """The counter behind a kept-open sysfs descriptor (int() takes the bytes, newline and all)."""
    return int(os.pread(fd, 32, 0))


class RaplSensor:
    """RAPL energy counters per socket: ``package-N`` (cpu), ``dram-N`` (dram), ``psys`` (other).

    Every reading is quantity ``energy`` in joules, cumulative since ``open()``, unwrapped.
    """

    name = "rapl"

    def __init__(self, root: str | None = None, interval_s: float = 0.5) -> None:
        self.root = Path(root or os.environ.get("SVBENCH_POWERCAP_ROOT") or DEFAULT_ROOT)
        self.interval_s = interval_s
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
            channels.append(_Channel(channel, component, zone, max_range, fd=fd, first_raw=raw, last_raw=raw))
        self._channels = channels

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
        readings = []
        for ch in self._channels:
            raw = int(os.pread(ch.fd, 32, 0))
            if raw < ch.last_raw:
                ch.wraps += 1  # one wrap per drop: the sidecar polls far faster than the wrap period
            ch.last_raw = raw
            uj = raw - ch.first_raw + ch.wraps * ch.max_range_uj
            readings.append(Reading(ch.channel, "energy", uj / 1e6, "J", ch.component))
        return readings

    def metadata(self) -> dict:
        return {
            "root": str(self.root),
            "channels": {
                ch.channel: {
                    "zone": ch.zone.name,
                    "component": ch.component,
                    "max_energy_range_uj": ch.max_range_uj,
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


def make(config: dict) -> RaplSensor:
    """Build a RaplSensor from its config section.

    Keys: ``root`` (powercap folder; default env ``SVBENCH_POWERCAP_ROOT`` or ``/sys/class/powercap``),
    ``interval_s`` (default 0.5; keep it far below the wrap period, ~4 min on AMD). Other keys are ignored.
    """
    return RaplSensor(root=config.get("root"), interval_s=float(config.get("interval_s", 0.5)))
