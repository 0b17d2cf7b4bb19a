"""Data for the walked apps, so that routes do their real work (a site under quota with a schedule, live miners,
a licensee, a DPC, an accredited pool, registered and pending machines) instead of answering 404 to everything."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from controller.runtime import Services
from kuat import clock
from kuat.wire import v1
from quota.timebase import ASTANA
from registry.schemas import DpcIn, HscIn, LicenseeIn, PoolIn
from tests.contract.apps import SITE

POOL = "stratum+tcp://pool.kz-accredited.example:3333"
HOST_BIN = "123456789013"


def seed_registry(registry: Any) -> None:
    host = registry.create_licensee(LicenseeIn(bin=HOST_BIN, name="Host LLP", licence_number="DM-1", subtype="I",
                                               valid_from=date(2026, 1, 1)), "seed")  # fmt: skip
    dpc = registry.create_dpc(DpcIn(name="DPC-1", address="Ekibastuz", zone="North", operator_id=host.id,
                                    capacity_mw=5), "seed")  # fmt: skip
    registry.create_pool(PoolIn(name="KZ pool", endpoints=[POOL], accreditation_number="AP-1",
                                valid_from=date(2026, 1, 1), valid_to=date(2030, 1, 1)), "seed")  # fmt: skip
    registry.create_hsc(HscIn(serial="SER-REG", owner_id=host.id, dpc_id=dpc.id, model="S19j Pro"), "seed")
    registry.create_hsc(HscIn(serial="SER-PENDING", model="S19j Pro"), "seed")


def miner(n: int, serial: str | None) -> v1.MinerSample:
    mac = f"02:00:00:00:01:{n:02x}"
    return v1.MinerSample(device_id=mac, ip=f"127.9.2.{n}", available=True, state=v1.MinerState.MINING,
                          make="Antminer", model="S19j Pro", serial=serial, mac=mac, hashrate_ths=100.0,
                          power_w=3000.0, power_source=v1.PowerSource.PDU, temp_c=70.0,
                          pools=[v1.Pool(url=POOL, active=True)])  # fmt: skip


def seed_controller(services: Services) -> None:
    assert services.registry is not None and services.quota is not None
    seed_registry(services.registry)
    batch = v1.TelemetryBatch(site=SITE, gateway="gw1", seq=1, ts=datetime.now(UTC),
                              miners=[miner(1, "SER-REG"), miner(2, "SER-PENDING"), miner(3, None)])  # fmt: skip
    assert services.telemetry.ingest(batch)
    services.sightings.flush()
    services.quota.set_site_limits(SITE, connection_kw=100, actor="seed")
    services.quota.push_schedule(SITE, clock.now().astimezone(ASTANA).date(), [80.0] * 24, actor="seed")
