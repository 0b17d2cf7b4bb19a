"""What the pool should have distributed, from the hash rate Kuat measured for the licensee at this DPC.

expected units = sum over days of (average measured TH/s that day x the network's reward in units per TH/s per
day) x (1 - pool fee). The reward comes from an imported series: a hashprice in units, or difficulty and block
reward (SHA-256: one hash per 2^32 / difficulty chance of a block, so reward per TH/s per day =
block reward x 86,400 x 10^12 / (difficulty x 2^32)). A deviation of the distributed quantity from the expected one
beyond the tolerance is flagged: a machine pointed elsewhere, or a pool that under-reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from money.numbers import RATIO, UNITS, plain, q

SECONDS_PER_DAY = Decimal(86400)
TWO_32 = Decimal(2**32)


def reward_per_ths_day(difficulty: Decimal, block_reward: Decimal) -> Decimal:
    return block_reward * SECONDS_PER_DAY * Decimal(10**12) / (difficulty * TWO_32)


@dataclass(frozen=True)
class Deviation:
    licensee: str
    asset: str
    ths_days: Decimal  # sum over days of the day's average TH/s (TH/s x days)
    expected: Decimal | None
    distributed: Decimal
    deviation: Decimal | None  # (distributed - expected) / expected
    flagged: bool
    missing_days: tuple[date, ...] = ()  # days with hash rate but no reward figure

    def as_dict(self) -> dict[str, Any]:
        return {"licensee": self.licensee, "asset": self.asset, "ths_days": plain(q(self.ths_days, RATIO)),
                "expected": plain(self.expected), "distributed": plain(self.distributed),
                "deviation_pct": plain(q(self.deviation * 100, RATIO)) if self.deviation is not None else None,
                "flagged": self.flagged, "missing_days": [d.isoformat() for d in self.missing_days]}


def deviation(licensee: str, asset: str, hashrate_ths_by_day: Mapping[date, Decimal],
              reward_by_day: Mapping[date, Decimal], distributed: Decimal, pool_fee: Decimal,
              tolerance: Decimal) -> Deviation:
    expected = Decimal(0)
    missing: list[date] = []
    ths_days = Decimal(0)
    for day, ths in sorted(hashrate_ths_by_day.items()):
        ths_days += ths
        reward = reward_by_day.get(day)
        if reward is None:
            if ths:
                missing.append(day)
            continue
        expected += ths * reward
    expected = q(expected * (1 - pool_fee), UNITS)
    if missing or not expected:
        return Deviation(licensee, asset, ths_days, expected if not missing else None, distributed, None,
                         bool(distributed) and not missing and not expected, tuple(missing))
    dev = (distributed - expected) / expected
    return Deviation(licensee, asset, ths_days, expected, distributed, dev, abs(dev) > tolerance)
