"""The estimated sensor: a model, not a measurement, for machines with no CPU/DRAM sensor.

CPU energy = CPU seconds of the monitored process tree × watts per busy core;
memory power = resident memory of the tree (GiB) × watts per GiB. Both factors come from the config
(``energy.estimate``) with their source. Every reading is flagged ``estimated`` so no table can show
it as measured.
"""

from __future__ import annotations

import os

import psutil

from svbench.instrument.config import EstimateConfig
from svbench.instrument.sensors.base import Reading, SensorUnavailable


class EstimateSensor:
    name = "estimate"

    def __init__(self, pid: int, config: EstimateConfig | None = None, exclude_pids: set[int] | None = None) -> None:
        config = config or EstimateConfig()
        self.pid = pid
        self.watts_per_core = config.watts_per_core
        self.watts_per_gib = config.watts_per_gib
        self.interval_s = config.interval_s
        self.source = config.source
        self.exclude = set(exclude_pids or ()) | {os.getpid()}
        self._root: psutil.Process | None = None
        self._cpu_s = 0.0  # kept monotonic: a child between exit and reaping is briefly invisible

    def open(self) -> None:
        try:
            self._root = psutil.Process(self.pid)
        except psutil.Error as exc:
            raise SensorUnavailable(f"process {self.pid} not found: {exc}") from exc

    def tree_usage(self) -> tuple[float, int]:
        """CPU seconds (live processes and reaped children) and resident bytes of the tree."""
        assert self._root is not None
        cpu, rss = 0.0, 0
        procs = [self._root]
        try:
            procs += self._root.children(recursive=True)
        except psutil.Error:
            pass
        for proc in procs:
            if proc.pid in self.exclude:
                continue
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    rss += proc.memory_info().rss
            except psutil.Error:
                continue  # exited between listing and reading
            # children_* hold the time of children this process already reaped
            cpu += t.user + t.system + t.children_user + t.children_system
        return cpu, rss

    def read(self) -> list[Reading]:
        cpu, rss = self.tree_usage()
        self._cpu_s = max(self._cpu_s, cpu)
        gib = rss / 2**30
        return [
            Reading("cpu", "energy", self._cpu_s * self.watts_per_core, "J", "cpu", estimated=True),
            Reading("dram", "power", gib * self.watts_per_gib, "W", "dram", estimated=True),
            Reading("cpu", "cpu_time", self._cpu_s, "s", "cpu", estimated=True),
        ]

    def metadata(self) -> dict:
        return {"pid": self.pid, "watts_per_core": self.watts_per_core, "watts_per_gib": self.watts_per_gib,
                "model": "CPU seconds of the process tree x W/core + RSS GiB x W/GiB"}

    def close(self) -> None:
        self._root = None
