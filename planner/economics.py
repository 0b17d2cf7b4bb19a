"""What a TH/s and a MWh are worth to the fleet tomorrow, in tenge.

Revenue per TH/s comes from the hashprice (USD per PH/s per day): imported as a series with its source (for example
Luxor's index, which averages fees over 144 blocks), or computed here from the network's difficulty, the block
subsidy, the fees per block and the BTC price:

    network hash rate  H = difficulty x 2**32 / 600 s          (one block per 600 s on average)
    hashprice          = 144 blocks/day x (subsidy + fees) x BTC/USD x 1e15 / H      (USD per PH/s per day)

The value of energy is the marginal hash rate per watt (`quota`'s Lagrange multiplier, TH/s per W) times the revenue
of a TH/s for an hour, converted at the National Bank's USD rate, less the pool's fee (a share of revenue) and less
the mining fee, which the Tax Code charges per kWh of metered consumption:

    value (KZT/MWh) = ths_per_w x 1e6 W/MW x 1 h x hashprice / 1000 / 24 x KZT/USD x (1 - pool fee)
                      - mining fee (KZT/kWh) x 1000

Check against QUOTA.md: at 50 USD/PH/day a 17.5 J/TH machine (1/17.5 TH/s per W) breaks even at
50 / (17.5 x 24) x 1000 = 119 USD/MWh (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from planner.errors import PlannerProblems

BLOCKS_PER_DAY = 144.0
BLOCK_INTERVAL_S = 600.0
PH = 1e15  # H/s in one PH/s


def hashprice_from_network(difficulty: float, subsidy_btc: float, fees_btc_per_block: float,
                           btc_usd: float) -> float:
    """USD per PH/s per day a miner earns in expectation at this difficulty, reward and price (before pool fee)."""
    problems = PlannerProblems()
    for name, v in (("difficulty", difficulty), ("subsidy_btc", subsidy_btc), ("btc_usd", btc_usd)):
        if not (math.isfinite(v) and v > 0):
            problems.add(name, f"must be a positive number (got {v!r})")
    if not (math.isfinite(fees_btc_per_block) and fees_btc_per_block >= 0):
        problems.add("fees_btc_per_block", f"must be a non-negative number (got {fees_btc_per_block!r})")
    problems.raise_if_any()
    network_hs = difficulty * 2**32 / BLOCK_INTERVAL_S
    return BLOCKS_PER_DAY * (subsidy_btc + fees_btc_per_block) * btc_usd * PH / network_hs


@dataclass(frozen=True, slots=True)
class Hashprice:
    """One day's hashprice and where it came from ("luxor-index", "network: difficulty ... price ...", ...)."""

    day: date
    usd_per_ph_day: float
    source: str


@dataclass(frozen=True, slots=True)
class Economics:
    """Everything that turns hash rate into tenge for one day, each figure with its source."""

    hashprice_usd_per_ph_day: float
    usd_kzt: float  # tenge per US dollar (National Bank of Kazakhstan)
    pool_fee: float = 0.0  # share of revenue the pool keeps (0.02 = 2 %)
    mining_fee_kzt_per_kwh: float = 0.0  # Tax Code mining fee on metered kWh
    hashprice_source: str = ""
    usd_source: str = ""
    fee_source: str = ""

    def __post_init__(self) -> None:
        problems = PlannerProblems()
        if not (math.isfinite(self.hashprice_usd_per_ph_day) and self.hashprice_usd_per_ph_day >= 0):
            problems.add("hashprice_usd_per_ph_day",
                         f"must be a non-negative number (got {self.hashprice_usd_per_ph_day!r})")
        if not (math.isfinite(self.usd_kzt) and self.usd_kzt > 0):
            problems.add("usd_kzt", f"must be a positive number of tenge per dollar (got {self.usd_kzt!r})")
        if not (math.isfinite(self.pool_fee) and 0 <= self.pool_fee < 1):
            problems.add("pool_fee", f"must be a share in [0, 1) (got {self.pool_fee!r})")
        if not (math.isfinite(self.mining_fee_kzt_per_kwh) and self.mining_fee_kzt_per_kwh >= 0):
            problems.add("mining_fee_kzt_per_kwh",
                         f"must be a non-negative number (got {self.mining_fee_kzt_per_kwh!r})")
        problems.raise_if_any()

    @property
    def kzt_per_ths_hour(self) -> float:
        """Net revenue of 1 TH/s for one hour, after the pool's fee."""
        return self.hashprice_usd_per_ph_day / 1000.0 / 24.0 * self.usd_kzt * (1.0 - self.pool_fee)

    @property
    def fee_kzt_per_mwh(self) -> float:
        return self.mining_fee_kzt_per_kwh * 1000.0

    def revenue_kzt(self, ths_hours: float) -> float:
        """Net revenue of `ths_hours` TH/s x h (an hour at 100 TH/s is 100)."""
        return ths_hours * self.kzt_per_ths_hour

    def value_kzt_per_mwh(self, ths_per_w: float) -> float:
        """What one more MWh is worth when it adds `ths_per_w` TH/s per W (after pool fee and mining fee)."""
        return ths_per_w * 1e6 * self.kzt_per_ths_hour - self.fee_kzt_per_mwh

    def break_even_usd_per_mwh(self, j_per_th: float) -> float:
        """The power price at which a machine of `j_per_th` J/TH earns nothing (QUOTA.md: hashprice / (J/TH x 24),
        before pool and mining fees)."""
        return self.hashprice_usd_per_ph_day / (j_per_th * 24.0) * 1000.0
