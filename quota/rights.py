"""The right to draw power: which machines the quota engine may power at all, and why the others are dark.

The law allows mining only by a licensed miner, with HSCs included in the national registry, in a DPC, through an
accredited pool (REGULATION.md, Art. 8.1, 9.1, 4.1.11-12). A control system that gives power must therefore fail
closed: a machine gets power only when the registry mirror *shows* that

- it is INCLUDED in the registry at THIS DPC,
- its owner's licence is active and valid today, and
- every pool endpoint it reports is served by an accredited pool valid today (a machine reporting no pools is dark:
  nothing shows it mines through an accredited pool),

or when it is applied for (pending at the registry) and holds a commissioning allowance valid now (burn-in before
the decision; the pools must still be accredited and the owner's licence valid). Everything else is dark, with a
reason.

"Today" is the Astana calendar day (serverkit.timeutil): a licence valid to 31 December ends at 19:00 UTC.
Decisions older than the trust window (the registry has not been heard from for that long) are not trusted at all:
every machine goes dark, since a suspension or exclusion made meanwhile cannot be known.

Pure: no I/O, no wire types. The controller builds a `Mirror` from its copy of the registry's feed and asks
`Rights.of(serial, pools)` per machine; the registry never decides power.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from serverkit.timeutil import astana_date, utc


class Reason(StrEnum):
    """Why a machine has (the first two) or has not power."""

    INCLUDED = "included"
    ALLOWANCE = "allowance"
    PENDING = "pending"  # applied for, not decided yet
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    EXCLUDED = "excluded"
    MOVED = "moved"  # included at another DPC
    NO_SERIAL = "no_serial"  # the firmware does not tell its serial: it can never be included
    NO_POOLS = "no_pools"  # reports no pool: nothing shows it mines through an accredited one
    UNKNOWN = "unknown"  # the registry has no row for this serial
    NO_LICENCE = "no_licence"  # the owner is not a licensee the registry told us about
    LICENCE_EXPIRED = "licence_expired"  # expired, not yet valid, suspended or revoked
    POOL_UNACCREDITED = "pool_unaccredited"
    STALE = "stale"  # registry decisions older than the trust window (or none received yet)


POWERED = frozenset({Reason.INCLUDED, Reason.ALLOWANCE})


@dataclass(frozen=True, slots=True)
class Right:
    reason: Reason
    detail: str

    @property
    def powered(self) -> bool:
        return self.reason in POWERED


@dataclass(frozen=True, slots=True)
class Decision:
    """The registry's decision on one machine, as this DPC's feed last showed it."""

    serial: str
    status: str  # registry.contract.v1.RegistrationStatus value
    dpc: str | None
    owner_bin: str | None = None
    registry_number: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Licence:
    bin: str
    number: str
    valid_from: date
    valid_to: date  # last Astana day of validity
    active: bool


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    endpoints: tuple[str, ...]
    valid_from: date
    valid_to: date
    withdrawn: bool = False


@dataclass(frozen=True, slots=True)
class Allowance:
    serial: str
    starts_at: datetime
    ends_at: datetime
    revoked_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and utc(self.starts_at) <= now < utc(self.ends_at)


@dataclass(frozen=True)
class Mirror:
    """What the controller knows of the registry's decisions for its DPC."""

    dpc: str
    decisions: Mapping[str, Decision] = field(default_factory=dict)  # serial -> decision
    licences: Mapping[str, Licence] = field(default_factory=dict)  # BIN -> licence
    pools: Sequence[Pool] = ()
    allowances: Mapping[str, Sequence[Allowance]] = field(default_factory=dict)  # serial -> allowances
    synced_at: datetime | None = None  # when the feed was last read to its head


def endpoint_key(url: str) -> str:
    """A stratum URL reduced to host[:port], lower case: 'stratum+tcp://Pool.KZ:3333/x' -> 'pool.kz:3333'."""
    text = url.strip()
    parts = urlsplit(text if "://" in text else f"stratum+tcp://{text}")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


_STATUS_REASON = {"submitted": Reason.PENDING, "rejected": Reason.REJECTED, "suspended": Reason.SUSPENDED,
                  "excluded": Reason.EXCLUDED, "moved": Reason.MOVED}  # fmt: skip


class Rights:
    """The rule over one mirror at one instant. Build once per run (or when the mirror or the day changes); `of` is
    a few dictionary lookups per machine."""

    def __init__(self, mirror: Mirror, now: datetime, trust: timedelta) -> None:
        self.mirror = mirror
        self.now = utc(now)
        self.today = astana_date(self.now)
        self.trust = trust
        synced = mirror.synced_at
        self.stale: str | None = None
        if synced is None:
            self.stale = "no registry decisions received yet"
        elif self.now - utc(synced) > trust:
            self.stale = (f"registry decisions last read {utc(synced).isoformat(timespec='seconds')}, older than the "
                          f"trust window of {trust.total_seconds() / 3600:g} h")
        self._accredited: set[str] = {endpoint_key(e) for p in mirror.pools
                                      if not p.withdrawn and p.valid_from <= self.today <= p.valid_to
                                      for e in p.endpoints}  # fmt: skip

    def of(self, serial: str | None, pools: Iterable[str], asleep: bool = False) -> Right:
        """The right of one machine. `asleep`: it is not hashing now, so an empty `pools` means "not told" (stock
        firmware asleep answers nothing) rather than "no pool": the pool check then waits for its first report,
        a poll after it runs (and the controller remembers pools it reported before, see PowerGate)."""
        if self.stale is not None:
            return Right(Reason.STALE, self.stale)
        if not serial:
            return Right(Reason.NO_SERIAL, "the firmware reports no serial number: it cannot be included")
        decision = self.mirror.decisions.get(serial)
        allowance = self._allowance(serial)
        status = decision.status if decision is not None else None
        if status == "included" and decision is not None and decision.dpc != self.mirror.dpc:
            return Right(Reason.MOVED, f"included at DPC {decision.dpc}, not {self.mirror.dpc}")
        if status != "included" and (allowance is None or status != "submitted"):
            return self._not_included(serial, decision)  # an allowance stands in only for a pending decision
        reported = list(pools)
        pool_problem = None if asleep and not reported else self._pool_problem(reported)
        if pool_problem is not None:
            return pool_problem
        licence_problem = self._licence_problem(decision.owner_bin if decision is not None else None)
        if licence_problem is not None:
            return licence_problem
        if status == "included" and decision is not None:
            number = f" as {decision.registry_number}" if decision.registry_number else ""
            return Right(Reason.INCLUDED, f"included at {self.mirror.dpc}{number}")
        assert allowance is not None
        return Right(Reason.ALLOWANCE, f"commissioning allowance until {utc(allowance.ends_at).isoformat()}")

    def _allowance(self, serial: str) -> Allowance | None:
        valid = [a for a in self.mirror.allowances.get(serial, ()) if a.valid_at(self.now)]
        return max(valid, key=lambda a: a.ends_at) if valid else None

    def _not_included(self, serial: str, decision: Decision | None) -> Right:
        if decision is None:
            return Right(Reason.UNKNOWN, f"no registry row for serial {serial} (no application decided)")
        reason = _STATUS_REASON.get(decision.status, Reason.UNKNOWN)
        why = f": {decision.reason}" if decision.reason else ""
        where = f" (DPC {decision.dpc})" if reason == Reason.MOVED and decision.dpc else ""
        return Right(reason, f"registry status {decision.status}{where}{why}")

    def _pool_problem(self, pools: list[str]) -> Right | None:
        if not pools:
            return Right(Reason.NO_POOLS, "reports no pool endpoint")
        bad = sorted({p for p in pools if not self._accredited_endpoint(p)})
        if bad:
            return Right(Reason.POOL_UNACCREDITED, f"not served by an accredited pool valid today: {', '.join(bad)}")
        return None

    def _accredited_endpoint(self, url: str) -> bool:
        key = endpoint_key(url)
        return key in self._accredited or key.split(":", 1)[0] in self._accredited

    def _licence_problem(self, owner: str | None) -> Right | None:
        if owner is None:
            return Right(Reason.NO_LICENCE, "the registry names no owner")
        licence = self.mirror.licences.get(owner)
        if licence is None:
            return Right(Reason.NO_LICENCE, f"owner {owner} has no licence in the registry's feed")
        if not licence.active:
            return Right(Reason.LICENCE_EXPIRED, f"licence {licence.number} of {owner} is not active")
        if self.today > licence.valid_to:
            return Right(Reason.LICENCE_EXPIRED,
                         f"licence {licence.number} of {owner} expired on {licence.valid_to.isoformat()} (Astana)")
        if self.today < licence.valid_from:
            return Right(Reason.LICENCE_EXPIRED,
                         f"licence {licence.number} of {owner} valid only from {licence.valid_from.isoformat()}")
        return None
