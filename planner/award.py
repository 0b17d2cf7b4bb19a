"""From what the auction awarded a zone in an hour to each site's purchased energy.

The register of winners gives, per zone and hour, the volume won (and what it cost). Pay-as-bid with rationing
accepts the highest prices first, so an award smaller than the bid filled the bid's steps from the top: every step
priced above the last one reached is won whole, the last one in part. Each step carries the sites it was bid for,
and a partly won step is shared between them in the proportion it was bid. An award larger than the bid (a
correction, or a bid made outside Kuat) goes to the sites in proportion to the whole bid, or, with no bid, by
`fallback_shares` (the zone shares of the sites); it is reported, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from planner.bids import Step
from planner.errors import PlannerProblems


@dataclass(frozen=True, slots=True)
class HourAward:
    zone: str
    hour: int
    won_mwh: float
    paid_kzt: float | None = None  # what the register says it cost; None: price x quantity of the steps filled


@dataclass(frozen=True, slots=True)
class SiteAward:
    site: str
    zone: str
    hour: int
    mwh: float
    cost_kzt: float
    note: str = ""


def split_award(award: HourAward, steps: Sequence[Step], fallback_shares: Mapping[str, float] | None = None,
                ) -> list[SiteAward]:
    """Each site's share of one zone-hour's award (see the module docstring)."""
    problems = PlannerProblems()
    if award.won_mwh < 0:
        problems.add("won_mwh", f"must not be negative (got {award.won_mwh})")
    problems.raise_if_any()
    ordered = sorted((s for s in steps if s.zone == award.zone and s.hour == award.hour),
                     key=lambda s: (-s.price_kzt_per_mwh, s.step))
    by_site: dict[str, list[float]] = {}  # site -> [mwh, cost]
    left = award.won_mwh
    for s in ordered:
        if left <= 1e-12:
            break
        take = min(s.mwh, left)
        for site, q in s.sites:
            got = take * q / s.mwh if s.mwh > 0 else 0.0
            acc = by_site.setdefault(site, [0.0, 0.0])
            acc[0] += got
            acc[1] += got * s.price_kzt_per_mwh
        left -= take
    note = ""
    if left > 1e-9:
        bid_sites: dict[str, float] = {}
        for s in ordered:
            for site, q in s.sites:
                bid_sites[site] = bid_sites.get(site, 0.0) + q
        shares = bid_sites or dict(fallback_shares or {})
        total = sum(shares.values())
        if total <= 0:
            problems.add("won_mwh", f"{award.zone} hour {award.hour}: {award.won_mwh} MWh won, but no bid and no "
                                    "site in the zone to give it to")
            problems.raise_if_any()
        for site, share in shares.items():
            by_site.setdefault(site, [0.0, 0.0])[0] += left * share / total
        note = f"{left:.3f} MWh won beyond the bid, shared by {'bid' if bid_sites else 'zone share'}"
    out = []
    for site, (mwh, cost) in sorted(by_site.items()):
        if award.paid_kzt is not None:  # the register's figure wins; shared in proportion to energy
            cost = award.paid_kzt * mwh / award.won_mwh if award.won_mwh > 0 else 0.0
        out.append(SiteAward(site, award.zone, award.hour, mwh, cost, note))
    return out
