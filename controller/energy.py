"""Energy from power samples: the trapezoid rule between consecutive samples of one device.

An interval longer than `max_gap_s` (a gateway outage, a device that vanished) is not integrated: we do not know
what the device drew meanwhile. It is flagged (counted) instead, so the books show the hole rather than a guess.
A sample without a power figure ends the chain; the next figured sample starts a new one.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

WS_PER_KWH = 3_600_000.0


@dataclass(slots=True)
class Interval:
    kwh: float
    seconds: float
    gap: bool  # too long to integrate: kwh is 0 and the interval is flagged


@dataclass(slots=True)
class _Last:
    t: float
    power_w: float | None


class Integrator:
    """One integration chain per key (a device); feed each key's samples in time order."""

    def __init__(self, max_gap_s: float) -> None:
        self.max_gap_s = max_gap_s
        self._last: dict[Hashable, _Last] = {}

    def add(self, key: Hashable, t: float, power_w: float | None) -> Interval | None:
        """Take a sample at epoch second `t`; return the interval it closes, or None (first, stale or no figure)."""
        last = self._last.get(key)
        if last is None:
            self._last[key] = _Last(t, power_w)
            return None
        if t <= last.t:  # duplicate or out of order: the chain has moved on
            return None
        t0, p0 = last.t, last.power_w
        last.t, last.power_w = t, power_w
        if p0 is None or power_w is None:
            return None
        seconds = t - t0
        if seconds > self.max_gap_s:
            return Interval(0.0, seconds, True)
        return Interval((p0 + power_w) / 2.0 * seconds / WS_PER_KWH, seconds, False)

    def forget(self, key: Hashable) -> None:
        self._last.pop(key, None)
