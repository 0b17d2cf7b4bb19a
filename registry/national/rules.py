"""Why a sighting shows a machine hashing without the right to: a pure function of facts (no I/O, no wire types).

The registry uses it to record violation episodes; it does not decide power (that rule is the quota side's,
quota/rights.py, fed by the decisions in the feed). Dates are Astana calendar days: a licence "valid to 31 Dec" ends at
Astana midnight, 19:00 UTC.

A machine has the right at DPC d on Astana day t when: its serial is known; it is included at d (or a commissioning
allowance for it at d is running: burn-in before inclusion waives inclusion only); its owner's licence is active and
t lies within its validity; it reports at least one pool; and every pool endpoint it reports is served by an
accredited pool valid on t.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from registry.compliance import endpoint_key
from registry.national.models import EpisodeKind


@dataclass(frozen=True)
class LicenceFacts:
    status: str
    valid_from: date
    valid_to: date


@dataclass(frozen=True)
class AccreditedEndpoints:
    """Endpoint keys (host:port, or a bare host for any port) of pools accredited and valid on one day."""

    keys: frozenset[str]

    @classmethod
    def on(cls, day: date, pools: list[tuple[list[str], date, date, bool]]) -> AccreditedEndpoints:
        """`pools`: (endpoints, valid_from, valid_to, withdrawn) of every pool on the list."""
        return cls(frozenset(endpoint_key(e) for endpoints, start, end, withdrawn in pools
                             if not withdrawn and start <= day <= end for e in endpoints))

    def serves(self, url: str) -> bool:
        key = endpoint_key(url)
        return key in self.keys or key.split(":", 1)[0] in self.keys


@dataclass(frozen=True)
class MachineFacts:
    serial: str | None
    included_here: bool
    status_here: str  # as this DPC sees it: included, submitted, rejected, moved, ..., or "unknown"
    allowance_running: bool
    licence: LicenceFacts | None
    pools: tuple[str, ...]


def missing_rights(facts: MachineFacts, today: date, accredited: AccreditedEndpoints) -> dict[EpisodeKind, str]:
    """Every reason the machine has no right to hash today, with a short detail; empty when it has the right."""
    found: dict[EpisodeKind, str] = {}
    if facts.serial is None:
        found[EpisodeKind.NO_SERIAL] = "no serial reported: the machine cannot be included"
    elif not facts.included_here and not facts.allowance_running:
        found[EpisodeKind.UNREGISTERED] = f"registry status here: {facts.status_here}"
    if facts.serial is not None and (facts.included_here or facts.allowance_running):
        lic = facts.licence
        if lic is None:
            found[EpisodeKind.LICENCE] = "owner has no licence on record"
        elif lic.status != "active" or not lic.valid_from <= today <= lic.valid_to:
            found[EpisodeKind.LICENCE] = (f"licence {lic.status}, valid {lic.valid_from}..{lic.valid_to}, "
                                          f"today {today} (Astana)")
    if not facts.pools:
        found[EpisodeKind.NO_POOLS] = "no pool reported"
    else:
        bad = sorted(p for p in facts.pools if not accredited.serves(p))
        if bad:
            found[EpisodeKind.UNACCREDITED_POOL] = "not accredited today: " + ", ".join(bad)
    return found
