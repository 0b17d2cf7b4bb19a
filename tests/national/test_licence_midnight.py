"""A licence that ends on an Astana calendar day darkens its owner's machines at Astana midnight (19:00 UTC), not at
UTC midnight five hours later: the real registry process, a site controller with the real agent and simulator, and
the kuat clock set two minutes before that midnight (KUAT_CLOCK, as the demo's --speed sets it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from kuat import clock
from registry.bin import check_digit
from registry.contract import v1 as c
from registry.schemas import LicenseeIn
from serverkit.timeutil import astana_date, astana_midnight
from tests.national.support import national, site_controller, until
from tests.national.test_national_e2e import answered
from tests.registry.national_world import AUTHORITY, build_world
from tests.support.postgres import PostgresCluster
from tests.support.servers import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
LEAD_S = 120.0  # clock seconds between the start and Astana midnight (start-up under load fits in it)
JUMP_TO_S = 8.0  # once the machine hashes, the clock goes to this long before midnight


def expiring_bin() -> str:
    first = "99050140001"
    digit = check_digit(first)
    assert digit is not None
    return first + str(digit)


@pytest.fixture
def before_midnight() -> Iterator[tuple[date, float]]:
    """The process clock a minute before the end of today's Astana day; restored afterwards."""
    today = astana_date(clock.now())
    midnight = astana_midnight(today + timedelta(days=1)).timestamp()
    saved = os.environ.get("KUAT_CLOCK")
    clock.configure(midnight - LEAD_S, 1.0)
    try:
        yield today, midnight
    finally:
        if saved is None:
            os.environ.pop("KUAT_CLOCK", None)
        else:
            os.environ["KUAT_CLOCK"] = saved
        clock._config = clock._parse(saved)  # the test owns the process clock


async def test_a_licence_ends_at_astana_midnight(postgres: PostgresCluster, broker: Mosquitto, tmp_path: Path,
                                                 before_midnight: tuple[date, float]) -> None:
    today, midnight = before_midnight
    nat = national(postgres.create_database(), tmp_path)
    try:
        build_world(nat.registry)
        owner = expiring_bin()
        nat.registry.create_reference("licensee", LicenseeIn(bin=owner, name="Last Day LLP", licence_number="DM-9",
                                                             subtype="II", valid_from=date(2025, 1, 1),
                                                             valid_to=today), AUTHORITY)  # fmt: skip
        async with site_controller(nat, broker, tmp_path, postgres.create_database(), "north", "DPC-A") as a:
            serial = a.serials("bmminer")[0]
            key = a.link.apply([c.ApplicationIn(kind=c.ApplicationKind.INCLUSION, serial=serial, owner_bin=owner,
                                                submitted_by="operator:test", submitted_at=clock.now())])
            nat.registry.decide((await answered(a, key))[serial], True, None, AUTHORITY)
            await until(lambda: a.hashing() == {serial}, "the machine of the licensee hashes on its last day", 50)
            assert clock.time() < midnight, "the machine must run before midnight for this test to say anything"
            mac = str(next(m.mac for m in a.file.miners if m.serial == serial))
            # start-up is done: the controller's clock skips the idle rest of the lead to a few seconds before
            # midnight (forward, as time passing); midnight itself is crossed live by the running loop
            clock.configure(max(clock.time(), midnight - JUMP_TO_S), 1.0)
            await until(lambda: clock.time() >= midnight, "Astana midnight", LEAD_S + 5)
            runs = a.svc.quota.loop.runs  # type: ignore[union-attr]

            def dark_for_its_licence() -> bool:
                known = a.link.gate.why(mac)
                return known is not None and known.right.reason == "licence_expired"

            await until(dark_for_its_licence, "the rule sees the licence ended", 30)
            await until(lambda: not a.hashing(), "the machine dark after Astana midnight", 30)
            # the loop ran: dark by the rule, not by a lease running out
            assert a.svc.quota is not None and a.svc.quota.loop.runs > runs
            known = a.link.gate.why(mac)
            assert known is not None
            assert today.isoformat() in known.right.detail
    finally:
        nat.process.stop()
        nat.engine.dispose()
