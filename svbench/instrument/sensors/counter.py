"""Energy counters you can trust: unwrap a hardware counter, and notice when it cannot be unwrapped.

A hardware energy counter (RAPL ``energy_uj``, NVML's total energy in mJ) is read every interval and
turned into joules since the first reading. Between two reads the counter may have wrapped (once,
which is fine, or several times, which cannot be seen), been reset (driver reload, CPU hot-plug) or
stepped back. :class:`CounterTracker` tells these apart with one physical bound: a channel cannot
spend more than ``max_power_w`` for the time between the reads, so

    ceiling = SAFETY_MARGIN × max_power_w × (elapsed + update_s)

where ``update_s`` allows for the counter's own update step and for the time between taking the
timestamp and reading the counter (a preempted sidecar). Then, with ``range`` the wrap modulus:

- ``ceiling ≥ range``: the interval could hold wraps that leave no trace: **break**;
- ``raw < prev``: a wrap if ``raw + range − prev ≤ ceiling``, else a reset or a step back: **break**
  (a counter without a range never wraps: every drop is a break);
- ``raw − prev > ceiling``: an implausible jump: **break**.

On a break no energy is credited for the interval (the cumulative figure stays as it was) and the
next interval counts from this raw value.

Trace contract (the join relies on it): at the read where continuity broke, the sensor emits both
``Reading(channel, ENERGY_QUANTITY, <unchanged cumulative J>, "J", component)`` and
``Reading(channel, BREAK_QUANTITY, <raw change seen in J, negative for a step back>, "J", component)``;
the sidecar stamps both with the same times. :func:`counter_readings` builds exactly these rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from svbench.instrument.sensors.base import Reading

ENERGY_QUANTITY = "energy"
BREAK_QUANTITY = "counter_break"

# Headroom over the largest plausible power: brief excursions above a power limit (PL2 bursts, GPU
# transients) and the imprecision of "largest plausible" itself. 10 % is enough for that, and still
# catches a reset or a hidden wrap, which are off by far more.
SAFETY_MARGIN = 1.1


@dataclass(frozen=True)
class CounterStep:
    """What one reading of a counter gave: cumulative joules, and the raw change if continuity broke."""

    energy_j: float
    break_j: float | None = None  # None: continuous; else the raw change seen (J), negative for a drop

    @property
    def broke(self) -> bool:
        return self.break_j is not None


class CounterTracker:
    """One channel's counter: successive raw readings in, cumulative joules since the first one out.

    raw_per_j: raw units per joule (1e6 for µJ, 1e3 for mJ). range_raw: the wrap modulus in raw units,
    None for a counter that does not wrap. max_power_w: the largest plausible power of the channel; None
    means no bound is known, and then a drop of a wrapping counter counts as one wrap (all that can be
    assumed) and no jump is questioned. update_s: seconds added to every elapsed time (see module doc).
    """

    def __init__(self, raw: int, t: float, *, raw_per_j: float, range_raw: int | None,
                 max_power_w: float | None, update_s: float = 0.0) -> None:
        self.raw_per_j = raw_per_j
        self.range_raw = range_raw
        self.max_power_w = max_power_w
        self.update_s = update_s
        self.breaks = 0
        self._prev = raw
        self._t_prev = t
        self._total_raw = 0  # sum of the credited raw deltas: an int, so no rounding accumulates

    def ceiling_raw(self, elapsed_s: float) -> float | None:
        """The most the counter can plausibly advance in ``elapsed_s`` (raw units), None if unbounded."""
        if self.max_power_w is None:
            return None
        return SAFETY_MARGIN * self.max_power_w * (max(elapsed_s, 0.0) + self.update_s) * self.raw_per_j

    def update(self, raw: int, t: float) -> CounterStep:
        """Take the reading ``raw`` made at monotonic time ``t`` (s)."""
        prev, elapsed = self._prev, t - self._t_prev
        self._prev, self._t_prev = raw, t
        ceiling = self.ceiling_raw(elapsed)
        wrap = self.range_raw
        if ceiling is not None and wrap is not None and ceiling >= wrap:
            return self._break(raw - prev)  # whole wraps could hide in this interval
        if raw < prev:
            if wrap is None or (ceiling is not None and raw + wrap - prev > ceiling):
                return self._break(raw - prev)  # reset or step back
            delta = raw + wrap - prev
        else:
            delta = raw - prev
            if ceiling is not None and delta > ceiling:
                return self._break(delta)  # more energy than the channel can spend in the time
        self._total_raw += delta
        return CounterStep(self._total_raw / self.raw_per_j)

    def _break(self, change_raw: int) -> CounterStep:
        self.breaks += 1
        return CounterStep(self._total_raw / self.raw_per_j, change_raw / self.raw_per_j)


def counter_readings(channel: str, component: str, step: CounterStep) -> list[Reading]:
    """The trace rows of one counter read: the energy, plus the break row where continuity broke."""
    out = [Reading(channel, ENERGY_QUANTITY, step.energy_j, "J", component)]
    if step.break_j is not None:
        out.append(Reading(channel, BREAK_QUANTITY, step.break_j, "J", component))
    return out
