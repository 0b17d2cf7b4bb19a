"""RegistryService on SQLite and PostgreSQL: registration from telemetry, approval, history, compliance, audit."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from registry.models import AuditEvent, Hsc, ViolationKind
from registry.schemas import ApproveIn, BulkApproveItem, DpcIn, HscIn, LicenseeIn, LicenseePatch
from registry.service import HscFilter, RegistryService
from serverkit.errors import InvalidInput, NotFound
from tests.registry.conftest import ACCREDITED, StepClock
from tests.registry.helpers import sample

SITE = "ekb"


def events_count(service: RegistryService) -> int:
    with service.reading() as s:
        return int(s.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


def open_kinds(service: RegistryService, serial: str) -> set[str]:
    return {v.kind for v in service.violations() if v.serial == serial}


def register(service: RegistryService, world: dict[str, int], clock: StepClock, *ns: int) -> None:
    service.record_sightings(SITE, "gw1", [sample(n) for n in ns], clock())
    for n in ns:
        service.approve(f"SN{n:05d}", ApproveIn(owner_id=world["host"], dpc_id=world["dpc"]), "operator:test")


def test_first_sighting_is_a_pending_registration_with_identity(service: RegistryService, world: dict[str, int],
                                                                clock: StepClock) -> None:
    result = service.record_sightings(SITE, "gw1", [sample(1, outlet=7), sample(2).model_copy(update={"serial": None})],
                                      clock())
    assert result.new_pending == ["SN00001"] and result.seen == 1 and result.skipped_no_serial == 1
    hsc, history = service.hsc_history("SN00001")
    assert (hsc.status, hsc.make, hsc.model, hsc.firmware) == ("pending", "Antminer", "Antminer S19j Pro",
                                                               "bmminer 1.0.0")
    assert hsc.mac == "02:00:00:00:00:01" and hsc.pools == [ACCREDITED]
    assert (hsc.nominal_ths, hsc.rated_w) == (104.0, 3068.0)  # from the catalogue (S19j Pro)
    assert (hsc.site, hsc.gateway, hsc.pdu, hsc.pdu_outlet, hsc.ip) == (SITE, "gw1", "pdu-a", 7, "127.77.1.1")
    assert hsc.first_seen_at == clock() and hsc.owner_id is None and hsc.registry_number is None
    assert [e.action for e in history] == ["first_seen"]
    assert history[0].actor == f"telemetry:{SITE}/gw1" and history[0].before is None
    assert open_kinds(service, "SN00001") == {ViolationKind.UNREGISTERED.value}  # mining while pending


def test_approval_registers_with_history(service: RegistryService, world: dict[str, int], clock: StepClock) -> None:
    service.record_sightings(SITE, "gw1", [sample(1)], clock())
    clock.advance(timedelta(hours=1))
    hsc = service.approve("SN00001", ApproveIn(owner_id=world["tenant"], dpc_id=world["dpc"], rack="R3", slot="12"),
                          "operator:alice")
    assert hsc.status == "registered" and hsc.registered_at == clock()
    assert hsc.registry_number == f"KZ-HSC-{hsc.id:08d}"
    assert hsc.owner_id == world["tenant"] and hsc.dpc_id == world["dpc"]  # a subtype-II tenant in the host's DPC
    _, history = service.hsc_history(hsc.id)
    assert [e.action for e in history] == ["first_seen", "assigned", "registered"]
    assigned = history[1]
    assert assigned.actor == "operator:alice"
    assert json.loads(assigned.before)["owner_id"] is None and json.loads(assigned.after)["rack"] == "R3"
    assert json.loads(history[2].after)["status"] == "registered"
    assert open_kinds(service, "SN00001") == set()  # no longer mining unregistered
    assert service.noncompliant_device_ids() == set()


def test_bad_approval_writes_nothing(service: RegistryService, world: dict[str, int], clock: StepClock) -> None:
    service.record_sightings(SITE, "gw1", [sample(1), sample(2)], clock())
    before = events_count(service)
    with pytest.raises(InvalidInput) as err:
        service.approve("SN00001", ApproveIn(owner_id=999, dpc_id=world["dpc"]), "operator:test")
    assert err.value.field == "owner_id" and "unknown licensee" in err.value.reason
    with pytest.raises(InvalidInput) as err:
        service.bulk_approve([BulkApproveItem(serial="SN00001", owner_id=world["host"], dpc_id=world["dpc"]),
                              BulkApproveItem(serial="SN00002", owner_id=world["host"], dpc_id=777)], "operator:t")
    assert err.value.field == "items[1].dpc_id"
    assert service.get_hsc("SN00001").status == "pending" and service.get_hsc("SN00001").owner_id is None
    assert events_count(service) == before
    done = service.bulk_approve([BulkApproveItem(serial=f"SN0000{n}", owner_id=world["host"], dpc_id=world["dpc"])
                                 for n in (1, 2)], "operator:t")
    assert [h.status for h in done] == ["registered", "registered"]


def test_moves_firmware_and_pool_changes_update_the_record(service: RegistryService, world: dict[str, int],
                                                           clock: StepClock) -> None:
    register(service, world, clock, 1)
    clock.advance(timedelta(minutes=5))
    moved = sample(1, outlet=20, gateway_pdu="pdu-b", firmware="LuxOS 2024.5.1")
    result = service.record_sightings(SITE, "gw2", [moved], clock())
    assert result.moved == ["SN00001"] and result.firmware_changed == ["SN00001"] and not result.new_pending
    hsc, history = service.hsc_history("SN00001")
    assert (hsc.gateway, hsc.pdu, hsc.pdu_outlet, hsc.firmware) == ("gw2", "pdu-b", 20, "LuxOS 2024.5.1")
    move = next(e for e in history if e.action == "moved")
    assert json.loads(move.before)["gateway"] == "gw1" and json.loads(move.after)["gateway"] == "gw2"
    assert json.loads(move.before)["pdu_outlet"] == 1
    assert history[-1].action == "firmware_changed"
    # the same sighting again changes nothing and writes no history
    before = events_count(service)
    assert service.record_sightings(SITE, "gw2", [moved], clock()).moved == []
    assert events_count(service) == before


def test_unaccredited_pool_raises_a_violation(service: RegistryService, world: dict[str, int],
                                              clock: StepClock) -> None:
    register(service, world, clock, 1, 2)
    rogue = "stratum+tcp://rogue-pool.example.com:3333"
    result = service.record_sightings(SITE, "gw1", [sample(1, pools=[rogue, ACCREDITED]), sample(2)], clock())
    assert result.pools_changed == ["SN00001"]
    assert result.violations_opened == [{"kind": "unaccredited_pool", "serial": "SN00001"}]
    (violation,) = service.violations(kind="unaccredited_pool")
    assert violation.evidence["unaccredited"] == [rogue] and violation.first_seen_at == clock()
    assert service.noncompliant_device_ids() == {"02:00:00:00:00:01"}
    assert service.noncompliant_serials() == {"SN00001"}
    # still there later: first-seen time kept
    clock.advance(timedelta(minutes=1))
    service.record_sightings(SITE, "gw1", [sample(1, pools=[rogue])], clock())
    (again,) = service.violations(kind="unaccredited_pool")
    assert again.id == violation.id and again.first_seen_at == violation.first_seen_at
    # re-pointed back: resolved
    service.record_sightings(SITE, "gw1", [sample(1)], clock())
    assert service.violations(kind="unaccredited_pool") == []
    assert service.violations(status="resolved", kind="unaccredited_pool")[0].resolved_at == clock()
    assert service.noncompliant_device_ids() == set()


def test_endpoint_matching_ignores_scheme_and_case(service: RegistryService, world: dict[str, int],
                                                   clock: StepClock) -> None:
    register(service, world, clock, 1)
    service.record_sightings(SITE, "gw1", [sample(1, pools=["stratum+ssl://POOL.kz-accredited.example:3333/"])],
                             clock())
    assert service.violations() == []
    service.record_sightings(SITE, "gw1", [sample(1, pools=["stratum+tcp://pool.kz-accredited.example:4444"])],
                             clock())
    assert [v.kind for v in service.violations()] == ["unaccredited_pool"]  # another port is another endpoint


def test_expired_licence_and_capacity_and_missing(service: RegistryService, world: dict[str, int],
                                                  clock: StepClock) -> None:
    register(service, world, clock, 1, 2, 3, 4)  # 4 x 3000 W = 12 kW in a 10 kW DPC
    result = service.check_compliance()
    assert result.open_by_kind == {"dpc_over_capacity": 1}
    (cap,) = service.violations(kind="dpc_over_capacity")
    assert cap.subject == "dpc" and cap.subject_id == world["dpc"] and cap.evidence["power_w"] == 12000.0
    assert service.check_compliance(dpc_power_w={"Ekibastuz-1": 9000.0}).open_by_kind == {}
    assert service.check_compliance(dpc_power_w={SITE: 10500.0}).open_by_kind == {"dpc_over_capacity": 1}
    assert service.violations(kind="dpc_over_capacity")[0].evidence["source"] == "measured"
    service.update_licensee(world["host"], LicenseePatch(valid_to=date(2026, 3, 1)), "operator:test")
    assert service.check_compliance(dpc_power_w={"Ekibastuz-1": 0}).open_by_kind == {"owner_licence": 4}
    assert "expired on 2026-03-01" in service.violations(kind="owner_licence")[0].evidence["problem"]
    assert len(service.noncompliant_serials()) == 4
    service.update_licensee(world["host"], LicenseePatch(valid_to=date(2028, 1, 10)), "operator:test")
    # machines 1..3 keep reporting, machine 4 goes silent for more than 3 days
    for _ in range(4):
        clock.advance(timedelta(days=1))
        service.record_sightings(SITE, "gw1", [sample(n) for n in (1, 2, 3)], clock())
    result = service.check_compliance(dpc_power_w={"Ekibastuz-1": 0})
    # 1..3 had their licence violations resolved by their sightings, machine 4 by this check
    assert result.open_by_kind == {"missing": 1} and result.resolved == 1
    hsc, history = service.hsc_history("SN00004")
    assert hsc.missing_since is not None and history[-1].action == "disappeared"
    assert service.noncompliant_serials() == set()  # a missing machine draws nothing: no power rule for it
    service.record_sightings(SITE, "gw1", [sample(4)], clock())
    assert service.hsc_history("SN00004")[1][-1].action == "reappeared"
    assert service.check_compliance(dpc_power_w={"Ekibastuz-1": 0}).open_by_kind == {}


def test_validation_names_the_field(service: RegistryService, world: dict[str, int]) -> None:
    service.create_hsc(HscIn(serial="X1"), "operator:test")
    with pytest.raises(InvalidInput) as err:
        service.create_hsc(HscIn(serial="X1"), "operator:test")
    assert err.value.field == "serial" and "duplicate" in err.value.reason
    with pytest.raises(InvalidInput) as err:
        service.update_licensee(world["host"], LicenseePatch(valid_to=date(2020, 1, 1)), "operator:test")
    assert err.value.field == "valid_to" and "out of order" in err.value.reason
    with pytest.raises(InvalidInput) as err:
        service.create_dpc(DpcIn(name="T", address="a", zone="South", operator_id=world["tenant"], capacity_mw=1),
                           "operator:test")
    assert err.value.field == "operator_id" and "subtype II" in err.value.reason
    with pytest.raises(InvalidInput) as err:
        service.create_hsc(HscIn(serial="X2", status="registered"), "operator:test")
    assert err.value.field == "owner_id"
    with pytest.raises(InvalidInput) as err:
        service.delete_licensee(world["host"], "operator:test")
    assert "still referenced" in err.value.reason
    assert [h.serial for h in service.list_hscs(HscFilter())[0]] == ["X1"]  # nothing half-written


def test_idempotent_sightings(service: RegistryService, clock: StepClock) -> None:
    first = service.record_sightings(SITE, "gw1", [sample(1)], clock(), idempotency_key="k-1")
    count = events_count(service)
    again = service.record_sightings(SITE, "gw1", [sample(1, firmware="other")], clock(), idempotency_key="k-1")
    assert again.replayed and again.new_pending == first.new_pending == ["SN00001"]
    assert events_count(service) == count and service.get_hsc("SN00001").firmware == "bmminer 1.0.0"
    clock.advance(timedelta(days=31))
    assert service.prune_idempotency_keys(timedelta(days=30)) == 1
    assert not service.record_sightings(SITE, "gw1", [sample(1)], clock(), idempotency_key="k-1").replayed


def test_pages_and_filters(service: RegistryService, world: dict[str, int], clock: StepClock) -> None:
    service.record_sightings(SITE, "gw1", [sample(n) for n in range(1, 26)], clock())
    for n in range(1, 11):
        clock.advance(timedelta(seconds=1))
        service.approve(f"SN{n:05d}", ApproveIn(owner_id=world["tenant"], dpc_id=world["dpc"]), "operator:t")
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        rows, cursor = service.list_hscs(HscFilter(), cursor, limit=7)
        seen += [r.serial for r in rows]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"SN{n:05d}" for n in range(1, 26)) and len(seen) == 25
    assert seen[-10:] == [f"SN{n:05d}" for n in range(1, 11)]  # ordered by changed_at: approved ones last
    registered, _ = service.list_hscs(HscFilter(status="registered", zone="North", owner_bin="000000000000"))
    assert len(registered) == 10
    assert service.list_hscs(HscFilter(zone="West"))[0] == []
    since = clock() - timedelta(seconds=1.5)
    assert [r.serial for r in service.list_hscs(HscFilter(changed_since=since))[0]] == ["SN00009", "SN00010"]
    with pytest.raises(InvalidInput):
        service.list_hscs(HscFilter(), cursor="garbage")


def test_audit_chain_detects_changes_behind_the_app(service: RegistryService, engine: Engine,
                                                    world: dict[str, int], clock: StepClock) -> None:
    register(service, world, clock, 1, 2)
    report = service.verify_audit()
    assert report.ok and report.events == events_count(service) and report.rows_checked == 2 + 1 + 1 + 2
    hsc2 = service.get_hsc("SN00002")
    with engine.begin() as conn:
        conn.execute(text("UPDATE hsc SET owner_id = :o WHERE serial = 'SN00002'"), {"o": world["tenant"]})
    report = service.verify_audit()
    assert not report.ok and report.first_broken is not None
    assert (report.first_broken.entity, report.first_broken.entity_id) == ("hsc", str(hsc2.id))
    assert "changed behind the app" in report.first_broken.reason
    _, history = service.hsc_history("SN00002")
    assert report.first_broken.seq == history[-1].seq


def test_audit_chain_detects_edited_and_removed_events(service: RegistryService, engine: Engine,
                                                       world: dict[str, int], clock: StepClock) -> None:
    register(service, world, clock, 1)
    total = events_count(service)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET actor = 'someone-else' WHERE seq = 3"))
    report = service.verify_audit()
    assert report.first_broken is not None and report.first_broken.seq == 3
    assert "edited" in report.first_broken.reason
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq = 3"))
    report = service.verify_audit()
    assert report.first_broken is not None and report.first_broken.seq == 4 and "removed" in report.first_broken.reason
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq >= :s"), {"s": total})
    assert not service.verify_audit().ok


def test_heartbeat_does_not_touch_the_chain(service: RegistryService, engine: Engine, world: dict[str, int],
                                            clock: StepClock) -> None:
    register(service, world, clock, 1)
    before = events_count(service)
    changed_at = service.get_hsc("SN00001").changed_at
    for _ in range(3):
        clock.advance(timedelta(seconds=30))
        service.record_sightings(SITE, "gw1", [sample(1, power_w=2900.0)], clock())
    hsc = service.get_hsc("SN00001")
    assert hsc.last_seen_at == clock() and hsc.last_power_w == 2900.0 and hsc.changed_at == changed_at
    assert events_count(service) == before and service.verify_audit().ok
    with service.reading() as s:
        assert s.execute(select(func.count()).select_from(Hsc)).scalar_one() == 1


def test_one_batch_with_a_serial_twice(service: RegistryService, world: dict[str, int], clock: StepClock) -> None:
    rogue = "stratum+tcp://rogue.example:1"
    result = service.record_sightings(SITE, "gw1", [sample(1, pools=[rogue]), sample(1, pools=[rogue], outlet=9)],
                                      clock())
    assert result.new_pending == ["SN00001"] and result.moved == ["SN00001"]
    assert sorted(v.kind for v in service.violations()) == ["unaccredited_pool", "unregistered_mining"]


def test_concurrent_writers_keep_one_chain(service: RegistryService, world: dict[str, int], clock: StepClock) -> None:
    import threading

    errors: list[BaseException] = []

    def writer(gateway: str, first: int) -> None:
        try:
            for n in range(first, first + 8):
                service.record_sightings(SITE, gateway, [sample(n)], clock())
                service.approve(f"SN{n:05d}", ApproveIn(owner_id=world["host"], dpc_id=world["dpc"]), gateway)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"gw{i}", 1 + i * 100)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    report = service.verify_audit()
    assert report.ok, report.as_dict()
    assert len(service.list_hscs(HscFilter(status="registered"), limit=100)[0]) == 32


def test_audited_delete_and_a_delete_behind_the_app(service: RegistryService, engine: Engine,
                                                    world: dict[str, int]) -> None:
    service.delete("pool", world["pool"], "operator:test")  # through the app: recorded, chain intact
    assert service.verify_audit().ok
    with pytest.raises(NotFound):
        service.get("pool", world["pool"])
    lic = service.create_licensee(LicenseeIn(bin="000000000101", name="Gone LLP", licence_number="DM-9",
                                             subtype="II", valid_from=date(2025, 5, 5)), "operator:test")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM licensee WHERE id = :i"), {"i": lic.id})
    report = service.verify_audit()
    assert report.first_broken is not None and report.first_broken.entity == "licensee"
    assert report.first_broken.entity_id == str(lic.id) and "gone" in report.first_broken.reason
