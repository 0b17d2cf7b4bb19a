"""One national registry (`kuat registry serve` on PostgreSQL, its own process), two site controllers with their own
databases linked to it over HTTP, each with the real agent polling its simulated site through mosquitto.

What holds, measured on the simulator's own physics (a machine hashes when its simulated hash rate is > 0):
- a machine the registry has not included never hashes, over many loop runs and sighting heartbeats (it is slept
  or cut every run: it is never woken again because it was seen asleep); a machine without a serial stays dark;
- the authority includes machines: they get power; one left pending stays dark;
- the registry goes down: decided machines keep running, a machine applied for meanwhile stays dark, and the
  submission waits in the outbox and reaches the registry when it is back;
- a tenant's machine moves from one DPC to the other (an application at the new one, included there): the old
  site follows the feed and darkens it;
- the regulator's export of the registry covers every site.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from controller.registry_link.models import RegistryOutbox
from kuat import clock
from registry.contract import v1 as c
from registry.national.models import Registration
from tests.national.support import National, Site, national, site_controller, until
from tests.registry.national_world import AUTHORITY, BIN_A, BIN_TENANT, build_world
from tests.support.postgres import PostgresCluster
from tests.support.servers import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def apply(site: Site, serials: list[str], kind: c.ApplicationKind = c.ApplicationKind.INCLUSION,
          owner: str = BIN_A) -> str:
    return site.link.apply([c.ApplicationIn(kind=kind, serial=s, owner_bin=owner, submitted_by="operator:test",
                                            submitted_at=clock.now()) for s in serials])  # fmt: skip


def application_ids(site: Site, key: str) -> dict[str, int]:
    with site.link.outbox.engine.connect() as conn:
        result = conn.execute(select(col(RegistryOutbox.result)).where(col(RegistryOutbox.idempotency_key) == key)
                              ).scalar_one()
    assert result is not None, "the application did not reach the registry"
    return {a.serial: a.id for a in c.ApplicationReceipt.model_validate(json.loads(result)).items}


async def answered(site: Site, key: str) -> dict[str, int]:
    def done() -> bool:
        item = site.link.outbox.items(key)
        assert item is None or item.refused_status is None, f"refused: {item.last_error}"
        return item is not None and item.sent_at is not None

    await until(done, f"{site.name}: submission {key} answered by the registry")
    return application_ids(site, key)


async def never_hashing(sites: list[Site], allowed: dict[str, set[str]], seconds: float) -> int:
    """Sample the simulators every 0.2 s for `seconds`: nothing outside `allowed` may hash at any sample."""
    samples = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        for s in sites:
            rogue = s.hashing() - allowed[s.name]
            assert not rogue, f"{s.name}: hashing without the right to: {sorted(rogue)}"
        samples += 1
        await asyncio.sleep(0.2)
    return samples


async def test_two_sites_one_national_registry(postgres: PostgresCluster, broker: Mosquitto, tmp_path: Path) -> None:
    nat: National = national(postgres.create_database(), tmp_path)
    try:
        build_world(nat.registry)
        async with site_controller(nat, broker, tmp_path, postgres.create_database(), "north", "DPC-A") as a, \
                site_controller(nat, broker, tmp_path, postgres.create_database(), "south", "DPC-B") as b:
            # nothing is decided yet: every machine of both sites goes dark, and stays dark
            await until(lambda: not a.hashing() and not b.hashing(), "every machine dark before any decision", 60)
            runs = a.svc.quota.loop.runs  # type: ignore[union-attr]
            await never_hashing([a, b], {"north": set(), "south": set()}, 6.0)
            assert a.svc.quota.loop.runs > runs + 3  # type: ignore[union-attr]

            # the authority includes three of north's stock Antminers; the fourth stays pending
            stock = a.serials("bmminer")
            included, pending = set(stock[:3]), stock[3]
            ids = await answered(a, apply(a, stock))
            for serial in included:
                nat.registry.decide(ids[serial], True, None, AUTHORITY)
            try:
                await until(lambda: a.hashing() == included, "the included machines hash", 60)
            except AssertionError:
                macs = {str(m.mac): m.serial for m in a.file.miners if m.serial in included}
                raise AssertionError({s: a.link.gate.why(mac) for mac, s in macs.items()}) from None
            heartbeats = a.svc.metrics.sightings_sent
            await never_hashing([a, b], {"north": included, "south": set()}, 8.0)
            assert a.svc.metrics.sightings_sent > heartbeats  # sightings went on (heartbeats) meanwhile
            why = a.link.gate.why
            reasons: dict[str, tuple[str | None, str | None]] = {}
            for d in a.svc.live.device_list():
                if d.kind == "miner":
                    r = why(d.device_id)
                    reasons[d.device_id] = (d.sample.serial, r.right.reason if r is not None else None)
            no_serial = [dev for dev, (serial, _) in reasons.items() if serial is None]
            assert no_serial and {str(m.mac) for m in a.file.miners if str(m.serial) in a.without_web()} == \
                set(no_serial), "the Antminer reached without web access tells no serial"
            for dev, (sn, reason) in reasons.items():
                expected = "no_serial" if sn is None else "included" if sn in included else \
                    "pending" if sn == pending else "unknown"
                assert reason == expected, (dev, sn, reason)
            waiting = why(str(next(m.mac for m in a.file.miners if m.serial == pending)))
            assert waiting is not None and waiting.right.reason == "pending"

            # the registry goes down: what was decided keeps running, a new application waits, its machine dark
            nat.process.stop()
            tenant = next(s for s in a.serials("bmminer", owner="tenant-ii") if s not in a.without_web())
            key = apply(a, [tenant], owner=BIN_TENANT)
            await never_hashing([a, b], {"north": included, "south": set()}, 5.0)
            assert a.hashing() == included
            assert a.link.outbox.counts().pending >= 1 and not a.link.status().reachable
            nat.process.start()
            await until(lambda: a.link.outbox.counts().pending == 0, "the outbox drained after the outage", 60)
            await answered(a, key)
            with nat.registry.reading() as s:
                reg = s.execute(select(Registration).where(col(Registration.serial) == tenant)).scalar_one()
            assert reg.status == "submitted"  # nothing submitted during the outage was lost

            # a move: the tenant's machine, included at north, is applied for at south and included there
            nat.registry.decide(application_ids(a, key)[tenant], True, None, AUTHORITY)
            running = included | {tenant}
            await until(lambda: a.hashing() == running, "the tenant's machine hashes at north", 60)
            moved = await answered(b, apply(b, [tenant], c.ApplicationKind.MOVE, owner=BIN_TENANT))
            nat.registry.decide(moved[tenant], True, None, AUTHORITY)
            await until(lambda: a.hashing() == included, "north darkens the machine that moved", 60)
            gone = a.link.gate.why(str(next(m.mac for m in a.file.miners if m.serial == tenant)))
            assert gone is not None and gone.right.reason == "moved"
            await until(lambda: b.link.mirror.load()[1].decisions[tenant].status == "included",
                        "south's mirror follows the inclusion (its own feed read)", 30)
            await never_hashing([a, b], {"north": included, "south": set()}, 3.0)

            # the regulator's export of the one registry covers both sites (over HTTP, its own key)
            async with httpx.AsyncClient(timeout=30) as http:
                export = await http.get(f"{nat.process.url}/api/v1/national/export.jsonl",
                                        headers={"Authorization": f"Bearer {nat.regulator_key}"})
            assert export.status_code == 200, export.text[:300]
            rows = [json.loads(line) for line in export.text.splitlines() if line.strip()]
            by_dpc = {r["serial"]: r["dpc"] for r in rows}
            assert by_dpc[tenant] == "DPC-B" and all(by_dpc[s] == "DPC-A" for s in included)
            assert {r["dpc"] for r in rows} == {"DPC-A", "DPC-B"}
    finally:
        nat.process.stop()
        nat.engine.dispose()
