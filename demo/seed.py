"""The demo's registry: a host licensee (subtype I) with its DPC, a subtype-II tenant, an accredited pool, and the
site's machines registered to their owners, except a few left for the operator to approve from the dashboard.

Seeded through the registry's service on the controller's database before the controller starts (one writer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from kuat.catalog import MODELS
from sim.site import MinerDef, SiteFile

log = logging.getLogger("demo")

ACCREDITED_POOL = "stratum+tcp://pool.kz-accredited.example:3333"
TENANT_OWNER = "tenant-ii"  # the site file's owner label of the tenant's machines
ACTOR = "demo-seed"


HOST_BIN = "180340021791"  # 12 digits with a valid check digit (registry.bin)
TENANT_BIN = "210540033881"


@dataclass
class Seeded:
    host_id: int
    host_bin: str
    tenant_id: int
    tenant_bin: str
    dpc_id: int
    registered: int = 0
    left_pending: list[str] = field(default_factory=list)


def seed_registry(registry: Any, site: SiteFile, leave_unregistered: int, capacity_mw: float) -> Seeded:
    """Licensees, DPC, pool and HSCs; `leave_unregistered` machines (spread over the site) stay unknown."""
    from registry.schemas import DpcIn, LicenseeIn, PoolIn

    today = date.today()
    start = today - timedelta(days=180)
    host_bin, tenant_bin = HOST_BIN, TENANT_BIN
    host = registry.create_licensee(LicenseeIn(bin=host_bin, name="Kuat Demo Mining LLP", licence_number="DM-0001",
                                               subtype="I", valid_from=start), ACTOR)  # fmt: skip
    tenant = registry.create_licensee(LicenseeIn(bin=tenant_bin, name="Steppe Hash LLP (tenant)", subtype="II",
                                                 licence_number="DM-0002", valid_from=start), ACTOR)  # fmt: skip
    dpc = registry.create_dpc(DpcIn(name=f"DPC {site.site.name}", address="Ekibastuz, industrial zone 4",
                                    zone="North", operator_id=host.id, capacity_mw=capacity_mw,
                                    residential_zone_evidence="akimat letter 12-04/771"), ACTOR)  # fmt: skip
    registry.create_pool(PoolIn(name="KZ Accredited Pool", endpoints=[ACCREDITED_POOL], accreditation_number="AP-07",
                                valid_from=start, valid_to=today + timedelta(days=720)), ACTOR)  # fmt: skip
    seeded = Seeded(host.id, host_bin, tenant.id, tenant_bin, dpc.id)
    step = max(1, len(site.miners) // max(1, leave_unregistered))
    left = {m.serial for m in site.miners[step - 1 :: step][:leave_unregistered]}  # spread over racks and makes
    for miner in site.miners:
        if miner.serial in left:
            seeded.left_pending.append(str(miner.serial))
            continue
        owner = tenant.id if miner.owner == TENANT_OWNER else host.id
        _register(registry, miner, owner, dpc.id)
        seeded.registered += 1
    _commissioning_sightings(registry, site, [m for m in site.miners if m.serial not in left])
    log.info("registry seeded: %d machines registered, %d left unregistered (%s)", seeded.registered, len(left),
             ", ".join(sorted(seeded.left_pending)))  # fmt: skip
    return seeded


def _register(registry: Any, miner: MinerDef, owner_id: int, dpc_id: int) -> None:
    from registry.schemas import HscIn

    spec = MODELS[miner.model]
    registry.create_hsc(HscIn(serial=str(miner.serial), mac=miner.mac, make=spec.make, model=miner.model,
                              nominal_ths=spec.nominal_ths, rated_w=float(spec.nominal_w), owner_id=owner_id,
                              dpc_id=dpc_id, hall=miner.hall, rack=miner.rack,
                              slot=str(miner.slot) if miner.slot is not None else None, pdu=miner.pdu,
                              pdu_outlet=miner.outlet, status="registered"), ACTOR)  # fmt: skip


def _commissioning_sightings(registry: Any, site: SiteFile, miners: list[MinerDef]) -> None:
    """The installers' record of each registered machine: where it was installed and which pools it was set up
    with, so the registry knows it as seen (not missing) and checks its pools before the first telemetry arrives."""
    from kuat.wire import v1

    by_gateway: dict[str, list[v1.MinerSample]] = {}
    for m in miners:
        sample = v1.MinerSample(device_id=str(m.mac), ip=str(m.ip), available=True, state=v1.MinerState.MINING,
                                make=MODELS[m.model].make, model=m.model, serial=m.serial, mac=m.mac,
                                pools=[v1.Pool(url=url, active=i == 0) for i, url in enumerate(m.pools)],
                                outlet=v1.OutletRef(pdu=m.pdu, outlet=m.outlet) if m.pdu and m.outlet else None)
        by_gateway.setdefault(m.gateway or site.site.gateways[0], []).append(sample)
    for gateway, samples in by_gateway.items():
        registry.record_sightings(site.site.name, gateway, samples, registry.now())
