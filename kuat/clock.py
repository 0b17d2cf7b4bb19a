"""The one clock every Kuat process reads, so a demo can run a grid day faster than real time.

In production it is the wall clock. `kuat demo --speed N` sets, for every process it starts,
``KUAT_CLOCK=<sim_epoch>,<real_epoch>,<speed>``: simulated time = sim_epoch + (real time - real_epoch) * speed.
Processes started with the same value agree on the simulated time to the precision of their wall clocks.
Durations that pace real work (poll intervals, timeouts) stay in real seconds; timestamps, hour boundaries, energy
integration and leases use this clock.
"""

from __future__ import annotations

import os
import time as _time
from datetime import UTC, datetime

_ENV = "KUAT_CLOCK"


def _parse(value: str | None) -> tuple[float, float, float] | None:
    if not value:
        return None
    try:
        sim_epoch, real_epoch, speed = (float(p) for p in value.split(","))
    except ValueError as exc:
        raise ValueError(f"{_ENV} must be '<sim_epoch>,<real_epoch>,<speed>', got {value!r}") from exc
    if speed <= 0:
        raise ValueError(f"{_ENV}: speed must be positive")
    return sim_epoch, real_epoch, speed


_config = _parse(os.environ.get(_ENV))


def time() -> float:
    """Seconds since the UNIX epoch, simulated if KUAT_CLOCK is set."""
    real = _time.time()
    if _config is None:
        return real
    sim_epoch, real_epoch, speed = _config
    return sim_epoch + (real - real_epoch) * speed


def now() -> datetime:
    """Aware UTC datetime of `time()`."""
    return datetime.fromtimestamp(time(), UTC)


def speed() -> float:
    return 1.0 if _config is None else _config[2]


def env_for(sim_epoch: float, speed: float, real_epoch: float | None = None) -> dict[str, str]:
    """The environment entry that makes child processes share one simulated clock."""
    real = _time.time() if real_epoch is None else real_epoch
    return {_ENV: f"{sim_epoch},{real},{speed}"}


def configure(sim_epoch: float, speed: float, real_epoch: float | None = None) -> None:
    """Set this process's clock (the demo's parent process, tests)."""
    global _config
    os.environ.update(env_for(sim_epoch, speed, real_epoch))
    _config = _parse(os.environ[_ENV])
