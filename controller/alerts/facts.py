"""Collects the facts the rules read (alerts.facts) from what the controller holds: the live state, the quota
service's status and excursions, the registry's racks, owners and open violations, and the money side's meter
comparison. Each source that cannot be read leaves its figures unknown (None), which fires nothing and resolves
nothing; the failure is logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from alerts.facts import Facts, GatewayFact, MachineFact, SiteFact, ViolationFact
from kuat import catalog, clock
from kuat.wire import v1
from serverkit.timeutil import astana_date, utc

if TYPE_CHECKING:
    from controller.runtime import Services

log = logging.getLogger(__name__)
REGISTRY_TTL_S = 60.0


@dataclass
class _Cached:
    value: Any = None
    at: float = -1e18


@dataclass
class FactsCollector:
    """`collect()` -> Facts. Registry placements are re-read every minute, the meter comparison every
    `meter_ttl_s` (it reads an hour table per source); everything else is read on each call."""

    services: Services
    meter_ttl_s: float = 300.0
    now: Callable[[], datetime] = clock.now
    _places: _Cached = field(default_factory=_Cached)
    _meter: dict[str, _Cached] = field(default_factory=dict)

    def collect(self) -> Facts:
        now = self.now()
        wall = time.time()
        sites_of: dict[str, str] = {}
        machines = self._machines(wall, sites_of)
        return Facts(machines=machines, sites=self._sites(now, {m.site for m in machines}),
                     gateways=self._gateways(wall), violations=self._violations(sites_of))  # fmt: skip

    # ------------------------------------------------------------ machines

    def _machines(self, wall: float, sites_of: dict[str, str]) -> list[MachineFact]:
        places = self._placements()
        fleet = self.services.fleet
        out = []
        for d in self.services.live.device_list():
            s = d.sample
            if not isinstance(s, v1.MinerSample):
                continue
            sites_of[d.device_id] = d.site
            rack, owner_name = places.get(s.serial or "", (None, None)) if s.serial else (None, None)
            nominal = s.nominal_ths
            if nominal is None:
                spec = catalog.lookup(s.model)
                nominal = spec.nominal_ths if spec is not None else None
            out.append(MachineFact(
                site=d.site, device_id=d.device_id, online=fleet.available(d, wall),
                mining=s.state == v1.MinerState.MINING, serial=s.serial, rack=rack, owner=d.owner,
                owner_name=owner_name, model=s.model, hashrate_ths=s.hashrate_ths, nominal_ths=nominal,
                temp_c=s.temp_c, boards_dead=sum(not b.ok for b in s.boards) if s.boards else None))  # fmt: skip
        return out

    def _placements(self) -> dict[str, tuple[str | None, str | None]]:
        """serial -> (rack, owner's name) from the registry, cached for a minute."""
        registry = self.services.registry
        if registry is None or not hasattr(registry, "reading"):
            return {}
        if time.monotonic() - self._places.at < REGISTRY_TTL_S:
            return dict(self._places.value or {})
        from sqlmodel import col, select

        from registry.models import Hsc, Licensee

        stmt = select(col(Hsc.serial), col(Hsc.rack), col(Licensee.name)).outerjoin(
            Licensee, col(Hsc.owner_id) == col(Licensee.id))
        try:
            with registry.reading() as session:
                found = {serial: (rack, name) for serial, rack, name in session.execute(stmt)}
        except Exception:
            log.exception("alerts: reading racks and owners from the registry failed")
            return dict(self._places.value or {})
        self._places = _Cached(found, time.monotonic())
        return found

    # ------------------------------------------------------------ sites

    def _sites(self, now: datetime, seen: set[str]) -> list[SiteFact]:
        quota = self.services.quota
        names = set(seen) | set(quota.sites() if quota is not None else [])
        totals = {t["site"]: t for t in self.services.fleet.site_totals()}
        return [self._site(name, now, quota, totals.get(name)) for name in sorted(names)]

    def _site(self, site: str, now: datetime, quota: Any, totals: dict[str, Any] | None) -> SiteFact:
        live_w = totals["power_w"] if totals else None
        meter_pct, meter_hour = self._meter_diff(site)
        if quota is None or site not in quota.sites():
            return SiteFact(site, power_w=live_w, meter_diff_pct=meter_pct, meter_hour=meter_hour)
        try:
            st = quota.status(site, now)
            hour = st["hour"]
            start = utc(hour["start"])
            found = quota.excursions(site, start, now)
        except Exception:
            log.exception("alerts: the quota status of %s could not be read", site)
            return SiteFact(site, power_w=live_w, meter_diff_pct=meter_pct, meter_hour=meter_hour)
        grid = st.get("grid")
        return SiteFact(site, power_w=st["measured_w"] if st["measured_w"] is not None else live_w,
                        limit_w=st["effective_limit_w"], hour_used_kwh=hour["used_kwh"],
                        hour_purchased_kwh=hour["purchased_kwh"],
                        hour_remaining_s=max(0.0, (start + timedelta(hours=1) - now).total_seconds()),
                        grid_stale=None if grid is None else bool(grid["stale"]),
                        excursion_kwh=round(sum(float(e["excess_kwh"]) for e in found), 6),
                        meter_diff_pct=meter_pct, meter_hour=meter_hour)  # fmt: skip

    def _meter_diff(self, site: str) -> tuple[float | None, str | None]:
        """The last hour both the commercial meter and Kuat measured (grid), as (meter - Kuat) / meter %."""
        money = self.services.money
        if money is None:
            return None, None
        cached = self._meter.get(site)
        if cached is not None and time.monotonic() - cached.at < self.meter_ttl_s:
            return cached.value[0], cached.value[1]
        today = astana_date(self.now())
        try:
            rec = money.meter(site, today - timedelta(days=2), today).get("grid")
        except Exception:
            log.exception("alerts: the meter comparison of %s could not be read", site)
            return None, None
        found: tuple[float | None, str | None] = (None, None)
        for row in reversed(rec.compared() if rec is not None else []):
            if row.meter_kwh:
                found = (float((row.meter_kwh - row.kuat_kwh) / row.meter_kwh * 100), utc(row.hour).isoformat())
                break
        self._meter[site] = _Cached(found, time.monotonic())
        return found

    # ------------------------------------------------------------ gateways, violations

    def _gateways(self, wall: float) -> list[GatewayFact]:
        return [GatewayFact(g.site, g.gateway, g.online, None if g.last_seen is None else max(0.0, wall - g.last_seen))
                for g in self.services.live.gateway_list()]  # fmt: skip

    def _violations(self, sites_of: dict[str, str]) -> list[ViolationFact] | None:
        registry = self.services.registry
        if registry is None or not hasattr(registry, "violations"):
            return None
        try:
            rows = registry.violations(limit=100_000)
        except Exception:
            log.exception("alerts: reading the registry's open violations failed")
            return None
        return [ViolationFact(v.id, v.kind, v.subject, sites_of.get(v.device_id or ""), v.device_id, v.serial,
                              utc(v.first_seen_at).isoformat()) for v in rows]  # fmt: skip
