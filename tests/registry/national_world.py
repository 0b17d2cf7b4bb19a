"""A national registry with two DPCs (North and South), their operators, a subtype-II tenant and one accredited
pool, built through the authority's own calls; and builders for contract messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from registry.contract.v1 import ApplicationBatch, ApplicationIn, Sighting, SightingBatch
from registry.national.service import NationalRegistry
from registry.schemas import DpcIn, LicenseeIn, PoolIn

# Valid BINs (check digits: registry/bin.py)
BIN_A = "180340021791"
BIN_TENANT = "000000000000"
BIN_B = "111111111110"
ACCREDITED = "stratum+tcp://pool.kz-accredited.example:3333"
ROGUE = "stratum+tcp://pool.elsewhere.example:3333"
AUTHORITY = "authority:test"


@dataclass
class World:
    a: str = "DPC-A"
    b: str = "DPC-B"


def build_world(nat: NationalRegistry, licence_to: date = date(2027, 12, 31)) -> World:
    op_a = nat.create_reference("licensee", LicenseeIn(bin=BIN_A, name="North LLP", licence_number="DM-1",
                                                       subtype="I", valid_from=date(2025, 1, 1), valid_to=licence_to),
                                AUTHORITY)
    op_b = nat.create_reference("licensee", LicenseeIn(bin=BIN_B, name="South LLP", licence_number="DM-2",
                                                       subtype="I", valid_from=date(2025, 1, 1)), AUTHORITY)
    nat.create_reference("licensee", LicenseeIn(bin=BIN_TENANT, name="Tenant LLP", licence_number="DM-3",
                                                subtype="II", valid_from=date(2025, 6, 1)), AUTHORITY)
    nat.create_reference("dpc", DpcIn(name="Ekibastuz-1", code="DPC-A", address="Ekibastuz", zone="North",
                                      operator_id=op_a.id, capacity_mw=5), AUTHORITY)
    nat.create_reference("dpc", DpcIn(name="Shymkent-1", code="DPC-B", address="Shymkent", zone="South",
                                      operator_id=op_b.id, capacity_mw=5), AUTHORITY)
    nat.create_reference("pool", PoolIn(name="KZ Pool", endpoints=[ACCREDITED], accreditation_number="AP-1",
                                        valid_from=date(2025, 1, 1), valid_to=date(2028, 1, 1)), AUTHORITY)
    return World()


def application(serial: str, owner: str = BIN_A, kind: str = "inclusion", **extra: Any) -> ApplicationBatch:
    return ApplicationBatch(applications=[ApplicationIn(
        kind=kind, serial=serial, owner_bin=owner, mac=extra.pop("mac", None), model="Antminer S19j Pro",
        submitted_by="op-1", submitted_at=datetime(2026, 3, 2, 7, 0), **extra)])


def sighting(serial: str | None, at: datetime, *, hashing: bool = True, pools: list[str] | None = None,
             mac: str | None = None, power_w: float = 3000.0) -> Sighting:
    return Sighting(serial=serial, mac=mac, hashing=hashing, state="mining" if hashing else "sleeping",
                    power_w=power_w if hashing else 5.0, pools=[ACCREDITED] if pools is None else pools, seen_at=at)


def batch(*sightings: Sighting, site: str = "site-1") -> SightingBatch:
    return SightingBatch(site=site, sightings=list(sightings), sent_at=max(s.seen_at for s in sightings))


def step(at: datetime, minutes: float) -> datetime:
    return at + timedelta(minutes=minutes)
