"""A replayed job for the join's tests: markers on a known clock and a trace of a known power profile
(its exact integral computed on a fine grid), as the monitor and the sidecar would have written them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from svbench.instrument.markers import Marker
from svbench.instrument.sensors.base import Reading
from svbench.instrument.trace import TraceWriter

S = 10**9  # ns per second
T0 = 1000 * S  # monotonic origin of the replayed traces


def marker(event: str, t: float, **fields: object) -> Marker:
    return Marker.from_json({"event": event, "t_mono_ns": T0 + int(t * S), "t_wall_ns": 1_700_000_000 * S + int(t * S),
                             **fields})


def power(t: np.ndarray) -> np.ndarray:
    """Piecewise-linear ramp up, plateau and ramp down, plus a sinusoid: W at seconds t."""
    ramp = np.interp(t, [0, 8, 12, 20], [200, 280, 280, 120])
    return ramp + 40 * np.sin(2 * np.pi * t / 3)


FINE = np.linspace(0, 25, 2_500_001)


FINE_E = np.concatenate(([0.0], np.cumsum((power(FINE[1:]) + power(FINE[:-1])) / 2 * np.diff(FINE))))


def exact(a: float, b: float) -> float:
    return float(np.interp(b, FINE, FINE_E) - np.interp(a, FINE, FINE_E))


def replay(path: Path, times: np.ndarray, extra: Callable[[TraceWriter, float], None] | None = None) -> None:
    """A 'meter' with power only and a 'counter' with energy only, sampled at ``times`` (seconds)."""
    w = TraceWriter(path)
    for t in times:
        ns = T0 + round(t * S)
        w.write("meter", [Reading("node", "power", float(power(np.array(t))), "W", "node")], ns, ns)
        w.write("counter", [Reading("node", "energy", exact(0, t), "J", "node")], ns, ns)
        if extra:
            extra(w, t)
    w.close()


def write_markers(path: Path, records: list[Marker]) -> None:
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))


def rows(frame, name: str, sensor: str | None = None):
    part = frame[frame["phase"] == name]
    return part if sensor is None else part[part["sensor"] == sensor].iloc[0]
