"""Compliance rules, as pure functions of registry rows and a context (no I/O here; `service` stores results).

Rules (one violation per kind and subject while it holds; first-seen time kept, evidence refreshed):
- unregistered_mining: a machine hashing (state mining/degraded, seen recently) that is not registered;
- unaccredited_pool: a machine pointed at a stratum endpoint no accredited, currently valid pool serves;
- owner_licence: a registered machine with no owner, or whose owner's licence is expired, not yet valid or not active;
- dpc_over_capacity: a DPC drawing above its grid connection capacity;
- missing: a registered machine not seen for longer than `missing_after`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from registry.models import AccreditedPool, HscStatus, LicenceStatus, Licensee, ViolationKind
from serverkit.timeutil import utc

HASHING_STATES = frozenset({"mining", "degraded"})
HSC_SIGHTING_KINDS = (ViolationKind.UNREGISTERED, ViolationKind.UNACCREDITED_POOL, ViolationKind.LICENCE)
HSC_KINDS = (*HSC_SIGHTING_KINDS, ViolationKind.MISSING)


def endpoint_key(url: str) -> str:
    """A stratum URL reduced to host[:port], lower case: 'stratum+tcp://Pool.KZ:3333/x' -> 'pool.kz:3333'."""
    text = url.strip()
    try:
        parts = urlsplit(text if "://" in text else f"stratum+tcp://{text}")
    except ValueError:  # "Invalid IPv6 URL" (an unbalanced '['): no host to compare, so never an accredited one
        return text.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


@dataclass
class RuleContext:
    now: datetime
    accredited: set[str]  # endpoint keys of pools accredited and valid now (host:port, or bare host = any port)
    licensees: dict[int, Licensee]
    fresh_for: timedelta = timedelta(minutes=15)  # a sighting older than this no longer proves "mining now"
    missing_after: timedelta = timedelta(days=3)

    @classmethod
    def build(cls, now: datetime, pools: list[AccreditedPool], licensees: list[Licensee],
              fresh_for: timedelta, missing_after: timedelta) -> RuleContext:
        today = utc(now).date()
        accredited = {endpoint_key(e) for p in pools if p.valid_from <= today <= p.valid_to for e in p.endpoints}
        return cls(utc(now), accredited, {lic.id: lic for lic in licensees if lic.id is not None}, fresh_for,
                   missing_after)

    def is_accredited(self, url: str) -> bool:
        key = endpoint_key(url)
        return key in self.accredited or key.split(":", 1)[0] in self.accredited


@dataclass
class HscFacts:
    """What the rules need to know about one machine (a row of the hsc table, or parts of it)."""

    status: str
    owner_id: int | None
    pools: list[str]
    last_seen_at: datetime | None
    last_state: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def _hashing_now(facts: HscFacts, ctx: RuleContext) -> bool:
    if facts.last_seen_at is None or facts.last_state not in HASHING_STATES:
        return False
    return ctx.now - utc(facts.last_seen_at) <= ctx.fresh_for


def licence_problem(licensee: Licensee | None, today: date) -> str | None:
    if licensee is None:
        return "no owner licensee assigned"
    if licensee.status != LicenceStatus.ACTIVE.value:
        return f"licence {licensee.licence_number} is {licensee.status}"
    if today > licensee.valid_to:
        return f"licence {licensee.licence_number} expired on {licensee.valid_to.isoformat()}"
    if today < licensee.valid_from:
        return f"licence {licensee.licence_number} is valid only from {licensee.valid_from.isoformat()}"
    return None


def hsc_violations(facts: HscFacts, ctx: RuleContext, kinds: tuple[ViolationKind, ...] = HSC_KINDS
                   ) -> dict[ViolationKind, dict[str, Any]]:
    """The violations one machine is in now, each with its evidence."""
    found: dict[ViolationKind, dict[str, Any]] = {}
    seen_at = utc(facts.last_seen_at).isoformat() if facts.last_seen_at else None
    if facts.status == HscStatus.DECOMMISSIONED.value and not _hashing_now(facts, ctx):
        return found
    if ViolationKind.UNREGISTERED in kinds and facts.status != HscStatus.REGISTERED.value and _hashing_now(facts, ctx):
        found[ViolationKind.UNREGISTERED] = {"status": facts.status, "state": facts.last_state, "seen_at": seen_at}
    bad_pools = sorted(p for p in facts.pools if not ctx.is_accredited(p))
    if ViolationKind.UNACCREDITED_POOL in kinds and bad_pools:
        found[ViolationKind.UNACCREDITED_POOL] = {"unaccredited": bad_pools, "pools": facts.pools, "seen_at": seen_at}
    if ViolationKind.LICENCE in kinds and facts.status == HscStatus.REGISTERED.value:
        owner = ctx.licensees.get(facts.owner_id) if facts.owner_id is not None else None
        if problem := licence_problem(owner, ctx.now.date()):
            found[ViolationKind.LICENCE] = {"owner_id": facts.owner_id, "problem": problem}
    gone = facts.last_seen_at is None or ctx.now - utc(facts.last_seen_at) > ctx.missing_after
    if ViolationKind.MISSING in kinds and facts.status == HscStatus.REGISTERED.value and gone:
        found[ViolationKind.MISSING] = {"last_seen_at": seen_at,
                                        "missing_after_days": ctx.missing_after.total_seconds() / 86400}
    return found


def dpc_over_capacity(power_w: float, capacity_mw: float) -> dict[str, Any] | None:
    capacity_w = capacity_mw * 1_000_000
    if power_w <= capacity_w:
        return None
    return {"power_w": power_w, "capacity_w": capacity_w, "excess_w": power_w - capacity_w}
