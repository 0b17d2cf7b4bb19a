"""The agent's wall clock, read in one place.

The agent steers by the monotonic clock: the setpoint lease expires by `time.monotonic()`, poll cycles are paced
by it, and commands are ordered by their arrival (one MQTT session, in order) and their ids, never by a time stamp.
The wall clock only stamps what the agent reports (telemetry, the lease's `expires_at`, `failsafe_since`) and
carries a persisted lease across a reboot. A gateway's wall clock can step (NTP after a dead RTC battery, an
operator's `date -s`): `step` moves this clock as such a step would, so tests can show that nothing the agent
decides depends on it (tests/chaos/test_wall_clock_step.py).
"""

from __future__ import annotations

import time as _time
from datetime import UTC, datetime

_offset_s = 0.0


def time() -> float:
    """Seconds since the UNIX epoch, as the gateway's clock says (stepped by `step`)."""
    return _time.time() + _offset_s


def now() -> datetime:
    """Aware UTC datetime of `time()`."""
    return datetime.fromtimestamp(time(), UTC)


def step(seconds: float) -> None:
    """Step the wall clock by `seconds` (forward or back), as NTP or an operator would; the monotonic clock does
    not move."""
    global _offset_s
    _offset_s += seconds


def reset() -> None:
    global _offset_s
    _offset_s = 0.0
