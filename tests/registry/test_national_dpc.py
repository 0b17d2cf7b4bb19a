"""The national registry's DPC side on SQLite and PostgreSQL: applications and decisions, the per-DPC feed,
idempotent submissions, violation episodes that survive a machine being put to sleep, moves and duplicates."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, text

from registry.contract.v1 import AllowanceIn, FeedPage, PortRefused, RegistrationStatus
from registry.dpc_port import InProcessDpcPort
from registry.national.models import Episode
from registry.national.service import NationalRegistry
from serverkit.db import session_factory
from tests.registry.conftest import StepClock
from tests.registry.national_world import (
    AUTHORITY,
    BIN_TENANT,
    ROGUE,
    application,
    batch,
    build_world,
    sighting,
    step,
)


@pytest.fixture
def nat(engine: Engine, clock: StepClock) -> NationalRegistry:
    registry = NationalRegistry(session_factory(engine), clock)
    build_world(registry)
    return registry


@pytest.fixture
def port_a(engine: Engine, clock: StepClock, nat: NationalRegistry) -> InProcessDpcPort:
    return InProcessDpcPort(session_factory(engine), ["DPC-A"], clock)


@pytest.fixture
def port_b(engine: Engine, clock: StepClock, nat: NationalRegistry) -> InProcessDpcPort:
    return InProcessDpcPort(session_factory(engine), ["DPC-B"], clock)


def hsc_items(page: FeedPage, serial: str) -> list[dict[str, object]]:
    return [i.data.model_dump() for i in page.items if i.data.kind == "hsc" and i.data.serial == serial]


def include(nat: NationalRegistry, port: InProcessDpcPort, dpc: str, serial: str, key: str, **extra: object) -> str:
    receipt = port.submit_applications(dpc, application(serial, **extra), key)  # type: ignore[arg-type]
    out = nat.decide(receipt.items[0].id, True, None, AUTHORITY)
    assert out.status == "included"
    return receipt.items[0].serial


def test_application_included_through_feed(nat: NationalRegistry, port_a: InProcessDpcPort) -> None:
    receipt = port_a.submit_applications("DPC-A", application("SN1"), "k1")
    assert receipt.items[0].status == "submitted"
    page = port_a.feed("DPC-A", 0)
    kinds = {i.data.kind for i in page.items}
    assert {"licence", "pool", "hsc"} <= kinds
    assert hsc_items(page, "SN1")[-1]["status"] == RegistrationStatus.SUBMITTED
    decided = nat.decide(receipt.items[0].id, True, None, AUTHORITY, registry_number="KZ-A-0001")
    assert decided.status == "included" and decided.decided_by == AUTHORITY
    later = port_a.feed("DPC-A", page.next_after)
    last = hsc_items(later, "SN1")[-1]
    assert last["status"] == RegistrationStatus.INCLUDED and last["registry_number"] == "KZ-A-0001"
    assert later.items[0].seq > page.next_after and later.head_seq >= later.next_after


def test_repeat_returns_first_receipt_and_applies_once(port_a: InProcessDpcPort, clock: StepClock) -> None:
    first = port_a.submit_applications("DPC-A", application("SN2"), "same-key")
    again = port_a.submit_applications("DPC-A", application("SN2"), "same-key")
    assert again.replayed and not first.replayed and again.items == first.items
    b = batch(sighting("SN2", clock.now))
    r1 = port_a.submit_sightings("DPC-A", b, "s-1")
    r2 = port_a.submit_sightings("DPC-A", b, "s-1")
    assert r2.replayed and r2.accepted == r1.accepted == 1


def test_refusals_name_the_field_or_the_binding(port_a: InProcessDpcPort) -> None:
    with pytest.raises(PortRefused) as bound:
        port_a.submit_applications("DPC-B", application("SN3"), "k")
    assert bound.value.status == 403
    with pytest.raises(PortRefused) as unknown:
        port_a.submit_applications("DPC-A", application("SN3", owner="222222222220"), "k2")
    assert unknown.value.status == 422 and "applications.0.owner_bin" in unknown.value.detail
    with pytest.raises(PortRefused) as host_b:  # South's operator is subtype I and does not operate DPC-A
        port_a.submit_applications("DPC-A", application("SN3", owner="111111111110"), "k3")
    assert "subtype I" in host_b.value.detail


def test_sleeping_does_not_resolve_an_episode(engine: Engine, nat: NationalRegistry, port_a: InProcessDpcPort,
                                             clock: StepClock) -> None:
    t0 = clock.now
    port_a.submit_applications("DPC-A", application("SN4"), "a4")  # submitted, not included: no right
    for i in range(3):
        port_a.submit_sightings("DPC-A", batch(sighting("SN4", step(t0, i))), f"h{i}")
    port_a.submit_sightings("DPC-A", batch(sighting("SN4", step(t0, 3), hashing=False)), "sleep")
    port_a.submit_sightings("DPC-A", batch(sighting("SN4", step(t0, 4), hashing=False)), "sleep2")
    with session_factory(engine)() as s:
        eps = list(s.execute(select(Episode).where(Episode.serial == "SN4")).scalars())  # type: ignore[arg-type]
    assert [e.kind for e in eps] == ["unregistered_mining"]
    ep = eps[0]
    assert ep.ended_at is not None and ep.ended_at == step(t0, 3)
    assert ep.duration_s == pytest.approx(180.0)
    assert ep.energy_wh == pytest.approx(3000.0 * 120 / 3600)  # two one-minute intervals at 3 kW
    assert ep.max_power_w == 3000.0
    notices = [i.data for i in port_a.feed("DPC-A", 0, 5000).items if i.data.kind == "violation"]
    assert [n.status for n in notices] == ["open", "closed"]
    assert nat.reference.verify_audit().ok


def test_no_serial_no_pools_unaccredited_and_licence(nat: NationalRegistry, port_a: InProcessDpcPort,
                                                     clock: StepClock, engine: Engine) -> None:
    include(nat, port_a, "DPC-A", "SN5", "a5")
    port_a.submit_sightings("DPC-A", batch(
        sighting(None, clock.now, mac="02:00:00:00:00:09"),
        sighting("SN5", clock.now, pools=[]),
        sighting("SN6", clock.now, pools=[ROGUE])), "mixed")
    with session_factory(engine)() as s:
        found = {(e.identity, e.kind) for e in s.execute(select(Episode)).scalars()}
    assert found == {("mac:02:00:00:00:00:09", "no_serial"), ("SN5", "no_pools"), ("SN6", "unregistered_mining"),
                     ("SN6", "unaccredited_pool")}


def test_licence_expiring_at_astana_midnight(engine: Engine, clock: StepClock) -> None:
    from datetime import UTC, date, datetime

    nat = NationalRegistry(session_factory(engine), clock)
    build_world(nat, licence_to=date(2026, 3, 2))
    port = InProcessDpcPort(session_factory(engine), ["DPC-A"], clock)
    include(nat, port, "DPC-A", "SN7", "a7")
    before = datetime(2026, 3, 2, 18, 59, tzinfo=UTC)  # 23:59 in Astana: still 2 March
    after = datetime(2026, 3, 2, 19, 1, tzinfo=UTC)  # 00:01 on 3 March in Astana, still 2 March in UTC
    port.submit_sightings("DPC-A", batch(sighting("SN7", before)), "b")
    port.submit_sightings("DPC-A", batch(sighting("SN7", after)), "a")
    with session_factory(engine)() as s:
        eps = list(s.execute(select(Episode)).scalars())
    assert [(e.kind, e.started_at) for e in eps] == [("owner_licence", after)]


def test_move_between_dpcs_and_duplicates(nat: NationalRegistry, port_a: InProcessDpcPort,
                                          port_b: InProcessDpcPort, clock: StepClock, engine: Engine) -> None:
    include(nat, port_a, "DPC-A", "SN8", "a8", owner=BIN_TENANT)
    t0 = clock.now
    port_a.submit_sightings("DPC-A", batch(sighting("SN8", t0)), "a-seen")
    receipt = port_b.submit_sightings("DPC-B", batch(sighting("SN8", step(t0, 1))), "b-seen")
    assert [c.other_dpc for c in receipt.conflicts] == ["DPC-A"]
    with session_factory(engine)() as s:
        kinds = {(e.dpc_id, e.kind) for e in s.execute(select(Episode)).scalars()}
    assert any(k == "duplicate_identity" for _, k in kinds)
    with pytest.raises(PortRefused):  # an inclusion of a machine registered elsewhere must be a move
        port_b.submit_applications("DPC-B", application("SN8", owner=BIN_TENANT), "b-inc")
    moved = port_b.submit_applications("DPC-B", application("SN8", owner=BIN_TENANT, kind="move"), "b-move")
    old = hsc_items(port_a.feed("DPC-A", 0, 5000), "SN8")[-1]
    assert old["status"] == RegistrationStatus.MOVED and old["dpc"] == "DPC-B"
    assert hsc_items(port_b.feed("DPC-B", 0, 5000), "SN8")[-1]["status"] == RegistrationStatus.SUBMITTED
    nat.decide(moved.items[0].id, True, None, AUTHORITY)
    assert hsc_items(port_b.feed("DPC-B", 0, 5000), "SN8")[-1]["status"] == RegistrationStatus.INCLUDED


def test_allowance_waives_inclusion_for_its_window(nat: NationalRegistry, port_a: InProcessDpcPort,
                                                   clock: StepClock, engine: Engine) -> None:
    t0 = clock.now
    with pytest.raises(PortRefused):  # no application yet: nothing to burn in
        port_a.submit_allowance("DPC-A", AllowanceIn(serial="SN9", starts_at=t0, ends_at=step(t0, 60),
                                                     reason="burn-in", granted_by="op-1"), "al0")
    port_a.submit_applications("DPC-A", application("SN9"), "a9")
    out = port_a.submit_allowance("DPC-A", AllowanceIn(serial="SN9", starts_at=t0, ends_at=step(t0, 60),
                                                       reason="burn-in", granted_by="op-1"), "al")
    assert out.dpc == "DPC-A" and not out.replayed
    port_a.submit_sightings("DPC-A", batch(sighting("SN9", step(t0, 30))), "in")
    with session_factory(engine)() as s:
        assert s.execute(select(Episode)).first() is None
    port_a.submit_sightings("DPC-A", batch(sighting("SN9", step(t0, 61))), "out")
    with session_factory(engine)() as s:
        assert [e.kind for e in s.execute(select(Episode)).scalars()] == ["unregistered_mining"]


def test_exclusion_and_authority_status_changes(nat: NationalRegistry, port_a: InProcessDpcPort) -> None:
    include(nat, port_a, "DPC-A", "SN10", "a10")
    nat.set_status("SN10", "suspend", "inspection", AUTHORITY)
    assert hsc_items(port_a.feed("DPC-A", 0, 5000), "SN10")[-1]["status"] == RegistrationStatus.SUSPENDED
    nat.set_status("SN10", "reinstate", "inspection passed", AUTHORITY)
    out = port_a.submit_applications("DPC-A", application("SN10", kind="exclusion", reason="sold"), "ex")
    assert out.items[0].status == "excluded"
    assert hsc_items(port_a.feed("DPC-A", 0, 5000), "SN10")[-1]["status"] == RegistrationStatus.EXCLUDED
    with pytest.raises(PortRefused):
        port_a.submit_applications("DPC-A", application("SN11", kind="exclusion"), "ex2")


def test_row_edited_behind_the_app_is_named(engine: Engine, nat: NationalRegistry, port_a: InProcessDpcPort) -> None:
    include(nat, port_a, "DPC-A", "SN12", "a12")
    with engine.begin() as c:
        c.execute(text("UPDATE registration SET status = 'included', dpc_id = dpc_id, registry_number = 'FAKE'"))
    report = nat.reference.verify_audit()
    assert not report.ok and report.first_broken is not None and report.first_broken.entity == "registration"
