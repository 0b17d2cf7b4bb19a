"""Energy and ledger bookkeeping of the quota loop: the hour's energy so far (what the pace of the hour steers by),
the open ledger period's samples, and the rows of every period that closed, written through LoopStore. The
arithmetic is the engine's (quota.ledger: energy between samples, allotments, excursions above the caps).

Two loop samples more than `MAX_GAP_S` clock seconds apart are not integrated (a stopped loop knows nothing of
what the site drew meanwhile): the stretch is logged and left out, and the open period starts again.

A closed period the database refuses because it is unreachable (serverkit.db.unavailable) is kept in memory (the
last `KEEP_UNWRITTEN`, as a standby keeps them) and written by the first run that can: a PostgreSQL restart
loses no ledger period.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from controller.quota.loop_store import LoopStore
from controller.quota.memory import ClosedPeriod, SiteRuntime
from controller.settings import QuotaSettings
from quota.ledger import (
    Allotment,
    CapWindow,
    PowerSample,
    energy_excursions,
    energy_kwh,
    excursions,
    ledger_rows,
    tenant_allotments,
)
from quota.limits import QuotaState, constraints_at, hour_bounds, most_restrictive, purchased_kwh
from quota.timebase import local_day_and_hour
from serverkit.db import Outage, unavailable

log = logging.getLogger(__name__)

KEEP_UNWRITTEN = 10  # closed periods a standby keeps for a takeover (10 minutes at the default period)
MAX_GAP_S = 120.0  # clock seconds between two loop samples beyond which the energy between them is not integrated


class Bookkeeper:
    def __init__(self, store: LoopStore, settings: QuotaSettings, outage: Outage | None = None) -> None:
        self.store = store
        self.settings = settings
        self.outage = outage or Outage("quota ledger", log)

    def account(self, site: str, state: QuotaState, rt: SiteRuntime, now: datetime, watts: float,
                tenant_w: dict[str, float], write: bool = True) -> None:
        """The hour's energy so far, and the ledger rows of every period that closed since the last run.
        `write=False` (a standby): closed periods are kept in memory (the last `KEEP_UNWRITTEN`); the first run
        that writes again writes those the ledger does not have yet, so a takeover leaves no gap."""
        sample = PowerSample(now, watts)
        if rt.last is None and write:
            self._flag_restart_gap(site, now)
        hour_start = hour_bounds(now, state.tz)[0]
        if rt.hour_start != hour_start:
            rt.hour_start = hour_start
            rt.hour_used_kwh = self.store.stored_kwh(site, hour_start, now) if rt.last is None else 0.0
        gap_ok = rt.last is not None and (now - rt.last.t).total_seconds() <= MAX_GAP_S
        if rt.last is not None and gap_ok:
            rt.hour_used_kwh += energy_kwh([rt.last, sample], max(rt.last.t, hour_start), now)
        cap = most_restrictive(now, constraints_at(state, now, energy=False))
        if rt.last is not None and gap_ok:
            rt.caps.append(CapWindow(rt.last.t, now, cap.limit_w, cap.binding.source.value, cap.binding.reason,
                                     cap.binding.reference))  # fmt: skip
        elif rt.last is not None:
            log.warning("quota %s: %.0f s without a loop run; that stretch is not integrated", site,
                        (now - rt.last.t).total_seconds())  # fmt: skip
            if write:
                self._flag(site, rt.last.t, now, "the loop did not run: not integrated", now)
            rt.samples, rt.tenant_samples, rt.caps = [], {}, []
        rt.samples.append(sample)
        for tenant in set(rt.tenant_samples) | set(tenant_w) | set(state.site.tenant_shares):
            rt.tenant_samples.setdefault(tenant, []).append(PowerSample(now, tenant_w.get(tenant, 0.0)))
        rt.period_limit_w = min(rt.period_limit_w, cap.limit_w)
        rt.last = sample
        if write and rt.unwritten:
            self._catch_up(site, rt)
        self._close_periods(site, state, rt, now, write)

    def _flag_restart_gap(self, site: str, now: datetime) -> None:
        """The first sample of this process: periods between the ledger's last one and this one are a gap (the
        controller was down), flagged in `quota_ledger_gap`."""
        try:
            stored_until = self.store.last_period_end(site)
        except Exception:
            log.exception("quota %s: cannot read the ledger's last period", site)
            return
        starts_at = _floor(now, self.settings.ledger_period_s)
        if stored_until is not None and stored_until < starts_at:
            self._flag(site, stored_until, starts_at, "no controller measured the site (down or restarted)", now)

    def _flag(self, site: str, start: datetime, end: datetime, reason: str, now: datetime) -> None:
        log.warning("quota %s: ledger gap %s..%s (%.0f s): %s", site, start.isoformat(), end.isoformat(),
                    (end - start).total_seconds(), reason)  # fmt: skip
        try:
            self.store.flag_gap(site, start, end, reason, now)
        except Exception:
            log.exception("quota %s: the ledger gap %s..%s could not be flagged", site, start, end)

    def _catch_up(self, site: str, rt: SiteRuntime) -> None:
        """Write the periods closed while standby that the ledger does not hold (the old active wrote the rest)."""
        try:
            stored_until = self.store.last_period_end(site)
        except Exception as exc:
            if unavailable(exc):
                self.outage.failed(exc, f"reading the ledger of {site}")
            else:
                log.exception("quota %s: cannot read the ledger's last period; the kept periods are kept", site)
            return
        pending, rt.unwritten = rt.unwritten, []
        todo = [p for p in pending if stored_until is None or p.start >= stored_until]
        for i, period in enumerate(todo):
            if not self._store_period(site, period, rt):  # out again: the rest waits behind it, in order
                rt.unwritten = [*rt.unwritten, *todo[i + 1:]][-KEEP_UNWRITTEN:]
                return
        log.info("quota %s: ledger written on from %s (%d periods kept in memory, while standby or while the "
                 "database was out; %d written)", site, stored_until.isoformat() if stored_until else "nothing stored",
                 len(pending), len(todo))

    def _close_periods(self, site: str, state: QuotaState, rt: SiteRuntime, now: datetime, write: bool) -> None:
        length = timedelta(seconds=self.settings.ledger_period_s)
        if rt.period_start is None:
            rt.period_start = _floor(now, self.settings.ledger_period_s)
            return
        while rt.period_start + length <= now:
            a, b = rt.period_start, rt.period_start + length
            closed = self._period(site, state, rt, a, b)
            if write and not rt.unwritten:
                self._store_period(site, closed, rt)
            elif write:  # older periods wait to be written (the database was out): this one joins them, in order
                rt.unwritten = [*rt.unwritten, closed][-KEEP_UNWRITTEN:]
            else:
                rt.unwritten = [*rt.unwritten, closed][-KEEP_UNWRITTEN:]
            rt.period_start = b
            rt.samples = _tail(rt.samples, b)
            rt.tenant_samples = {t: _tail(v, b) for t, v in rt.tenant_samples.items()}
            rt.caps = [c for c in rt.caps if c.end > b]
            rt.period_limit_w = math.inf

    def _period(self, site: str, state: QuotaState, rt: SiteRuntime, a: datetime, b: datetime) -> ClosedPeriod:
        period_s = self.settings.ledger_period_s
        allot = _allotments(state, a)
        site_row = ledger_rows("site", site, rt.samples, allot, a, b, period_s)
        tenant_rows = [r for tenant, samples in rt.tenant_samples.items() if tenant in state.site.tenant_shares
                       for r in ledger_rows("tenant", tenant, samples,
                                            tenant_allotments(allot, state.site.tenant_shares[tenant]), a, b,
                                            period_s)]  # fmt: skip
        inside = [p for p in rt.points if a <= p.ts < b]
        mean_w = site_row[0].consumed_kwh * 3.6e6 / (b - a).total_seconds() if site_row else 0.0
        target = inside[-1].target_w if inside else 0.0
        limit = rt.period_limit_w if math.isfinite(rt.period_limit_w) else 0.0
        hour_end = b == hour_bounds(b - timedelta(microseconds=1), state.tz)[1]
        return ClosedPeriod(a, b, [*site_row, *tenant_rows], mean_w, limit, target,
                            excursions(_clip(rt.samples, a, b), rt.caps), state if hour_end else None)

    def _store_period(self, site: str, p: ClosedPeriod, rt: SiteRuntime) -> bool:
        """Write one closed period; False if the database is out and the period is kept for the next run."""
        try:
            self.store.write_period(site, p.rows, p.mean_w, p.limit_w, p.target_w, p.excursions)
        except Exception as exc:
            if not unavailable(exc):
                log.exception("quota %s: ledger rows for %s..%s not written", site, p.start.isoformat(),
                              p.end.isoformat())  # fmt: skip
                return True
            self.outage.failed(exc, f"writing the ledger of {site}")
            rt.unwritten = [*rt.unwritten, p][-KEEP_UNWRITTEN:]  # the next run that can writes it
            return False
        try:
            if p.closes_hour is not None:
                self._close_hour(site, p.closes_hour, p.end)
        except Exception:
            log.exception("quota %s: the hour's energy excursion up to %s not written", site, p.end.isoformat())
        return True

    def _close_hour(self, site: str, state: QuotaState, end: datetime) -> None:
        """An hour above its purchased energy is an excursion of its own (cause purchased_energy)."""
        start = end - timedelta(hours=1)
        if _purchased(state, start) is None:
            return
        self.store.write_excursions(site, energy_excursions(self.store.hour_rows(site, end)))


def _floor(t: datetime, period_s: int) -> datetime:
    epoch = t.timestamp()
    return datetime.fromtimestamp(epoch - epoch % period_s, t.tzinfo)


def _tail(samples: list[PowerSample], t: datetime) -> list[PowerSample]:
    """Samples from the last one at or before `t` on (the next period integrates from there)."""
    keep = [i for i, s in enumerate(samples) if s.t <= t]
    return samples[keep[-1]:] if keep else samples


def _clip(samples: list[PowerSample], a: datetime, b: datetime) -> list[PowerSample]:
    """The samples inside [a, b], with values interpolated at both ends."""
    out = [s for s in samples if a < s.t < b]
    for edge in (a, b):
        before = [s for s in samples if s.t <= edge]
        after = [s for s in samples if s.t >= edge]
        if before and after:
            p, q = before[-1], after[0]
            span = (q.t - p.t).total_seconds()
            w = p.watts if span <= 0 else p.watts + (q.watts - p.watts) * (edge - p.t).total_seconds() / span
            out.append(PowerSample(edge, w))
    return sorted(out, key=lambda s: s.t)


def _purchased(state: QuotaState, at: datetime) -> float | None:
    day, hour = local_day_and_hour(at, state.tz)
    bought = purchased_kwh(state, day, hour)
    return None if bought is None else bought[0]


def _allotments(state: QuotaState, at: datetime) -> list[Allotment]:
    start, end, _ = hour_bounds(at, state.tz)
    kwh = _purchased(state, at)
    return [] if kwh is None else [Allotment(start, end, kwh)]
