"""Builds a powercap tree shaped like ``/sys/class/powercap`` in a test folder.

As in sysfs, the zones live under ``devices/virtual/powercap/intel-rapl/`` with sub-zones nested in
their package, and the class folder holds one flat symlink per zone (``intel-rapl:0``,
``intel-rapl:0:0``, ...) plus the control-type folder ``intel-rapl``.
"""

from __future__ import annotations

from pathlib import Path

INTEL_MAX_RANGE_UJ = 262_143_328_850  # a real Intel package's max_energy_range_uj (≈ 262 kJ)


class PowercapTree:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.devices = self.root / "devices" / "virtual" / "powercap" / "intel-rapl"
        self.devices.mkdir(parents=True)
        (self.devices / "enabled").write_text("1\n")
        (self.root / "intel-rapl").symlink_to(self.devices)
        self.zones: dict[str, Path] = {}

    def add_zone(self, zone: str, name: str, energy_uj: int = 0, max_range_uj: int = INTEL_MAX_RANGE_UJ) -> Path:
        """``zone`` is the sysfs id (``intel-rapl:0`` or ``intel-rapl:0:1``); ``name`` what its name file says."""
        parts = zone.split(":")
        parent = self.devices if len(parts) == 2 else self.zones[":".join(parts[:2])]
        folder = parent / zone
        folder.mkdir()
        (folder / "name").write_text(name + "\n")
        (folder / "energy_uj").write_text(f"{energy_uj}\n")
        (folder / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        (folder / "enabled").write_text("1\n")
        (self.root / zone).symlink_to(folder)
        self.zones[zone] = folder
        return folder

    def set_energy(self, zone: str, energy_uj: int) -> None:
        (self.zones[zone] / "energy_uj").write_text(f"{energy_uj}\n")

    def energy_file(self, zone: str) -> Path:
        return self.zones[zone] / "energy_uj"


def two_socket_server(root: Path) -> PowercapTree:
    """Two packages, each with a DRAM sub-zone; socket 0 also has a core sub-zone; plus an MMIO mirror."""
    tree = PowercapTree(root)
    tree.add_zone("intel-rapl:0", "package-0", energy_uj=1_000_000)
    tree.add_zone("intel-rapl:0:0", "dram", energy_uj=500_000)
    tree.add_zone("intel-rapl:0:1", "core", energy_uj=700_000)
    tree.add_zone("intel-rapl:1", "package-1", energy_uj=2_000_000)
    tree.add_zone("intel-rapl:1:0", "dram", energy_uj=600_000)
    mmio = root / "intel-rapl-mmio:0"
    mmio.mkdir()
    (mmio / "name").write_text("package-0\n")
    (mmio / "energy_uj").write_text("1000000\n")
    return tree
