"""Deterministic sensor reads with realistic noise, as the sidecar writes them (for the trace-format tests)."""

from __future__ import annotations

import math

import numpy as np

from svbench.instrument.sensors.base import Reading
from svbench.instrument.trace import SESSION_QUANTITY, SESSION_SENSOR

S = 10**9


def session_reads(seed: int, n: int, session: str | None = None) -> list[tuple[str, list[Reading], int, int]]:
    """A session row, then ``n`` wake-ups of 0.1 s: NVML (noisy energy counters in mJ, power in mW, of two GPUs;
    a failed read now and then), every fifth one RAPL (µJ) and an estimated DRAM power, on a clock of its own."""
    rng = np.random.default_rng(seed)
    mono0, offset = (1_000 + 100 * seed) * S, 1_760_000_000 * S + seed * S
    session = session or f"s{seed}"
    reads = [(SESSION_SENSOR, [Reading(session, SESSION_QUANTITY, 0.0, "", "other")], mono0 + offset, mono0)]
    energy, package = np.zeros(2), 0.0
    for i in range(1, n + 1):
        mono = mono0 + i * S // 10 + int(rng.integers(0, 400_000))
        wall = mono + offset + int(rng.integers(-2_000, 2_000))
        power = np.round(280 + rng.normal(0, 9, 2), 3)
        energy += np.round(power * 0.1 + rng.normal(0, 0.02, 2), 3)
        rs = []
        for g in range(2):
            if i % 37 == 0 and g == 1:
                rs.append(Reading("gpu1", "error", math.nan, "", "gpu"))
                continue
            rs += [Reading(f"gpu{g}", "energy", round(float(energy[g]), 3), "J", "gpu"),
                   Reading(f"gpu{g}", "power", float(power[g]), "W", "gpu")]
        reads.append(("nvml", rs, wall, mono))
        if i % 5 == 0:
            package = round(package + 60 + rng.normal(0, 2), 6)
            reads.append(("rapl", [Reading("package-0", "energy", package, "J", "cpu")], wall + 30_000, mono + 30_000))
            reads.append(("estimate", [Reading("dram, all", "power", round(2.5 + rng.normal(0, 0.05), 4), "W",
                                               "dram", estimated=True)], wall + 50_000, mono + 50_000))
    return reads


def rows_of(reads: list[tuple[str, list[Reading], int, int]], session: str) -> list[tuple]:
    """The trace rows of ``reads``, as :func:`svbench.instrument.trace.iter_trace` gives them (NaN as None)."""
    return [(wall, mono, sensor, r.channel, r.quantity, None if math.isnan(r.value) else r.value, r.unit,
             r.component, r.estimated, session) for sensor, rs, wall, mono in reads for r in rs]
