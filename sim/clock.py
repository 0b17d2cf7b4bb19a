"""Simulated time: real time times a speed factor, so a grid day can run in minutes."""

from __future__ import annotations

import time


class SimClock:
    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._real0 = time.monotonic()
        self._sim0 = time.time() if start is None else start

    def now(self) -> float:
        """Simulated UNIX time (seconds)."""
        return self._sim0 + (time.monotonic() - self._real0) * self.speed

    def real_seconds(self, sim_seconds: float) -> float:
        """How long `sim_seconds` of simulated time takes in real time."""
        return sim_seconds / self.speed


class ManualClock(SimClock):
    """A clock that moves only when told to: for deterministic tests and the in-process fleet."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        super().__init__(1.0, start)
        self._t = start

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        self._t += seconds
