"""The registry link on real services (SQLite), with the national registry unreachable (a closed loopback port):
submissions wait in the outbox with their keys and a backoff and nothing is lost; the mirror applies feed pages by
subject and cursor (a replayed or older item changes nothing); machines it never decided on are dark, decided ones
keep power within the trust window; the API says why, grants an audited allowance and 422s every bad field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from controller.app import create_app
from controller.registry_link.client import RegistryLink
from controller.registry_link.models import RegistryOutbox
from controller.runtime import Services, build_services
from kuat import clock
from kuat.wire import v1
from quota.rights import Reason
from registry.contract import v1 as c
from tests.controller.conftest import make_settings
from tests.support.servers import free_port

OPERATOR = "op-" + "k" * 30
REGULATOR = "reg-" + "r" * 30
GRID = "grid-" + "g" * 30
KEYS = [{"name": "ops", "role": "operator", "key": OPERATOR}, {"name": "insp", "role": "regulator", "key": REGULATOR},
        {"name": "kegoc", "role": "grid", "key": GRID}]
OWNER = "123456789012"
POOL = "stratum+tcp://pool.kz:3333"


@pytest.fixture
def down(tmp_path: Path) -> Iterator[tuple[TestClient, Services, RegistryLink]]:
    """A controller whose national registry does not answer (nothing listens on its port)."""
    key = tmp_path / "dpc.key"
    key.write_text("dpc-" + "d" * 40 + "\n")
    settings = make_settings(tmp_path, api_keys=KEYS, registry={
        "mode": "remote", "dpc": "DPC-A", "url": f"http://127.0.0.1:{free_port()}", "key_file": str(key),
        "timeout_s": 2, "retry_min_s": 30, "retry_max_s": 600})  # fmt: skip
    svc = build_services(settings, with_ingest=False)
    assert svc.registry_link is not None
    with TestClient(create_app(settings, svc)) as client:
        yield client, svc, svc.registry_link
    svc.close()


def sample(dev: str, serial: str | None, pools: tuple[str, ...] = (POOL,)) -> v1.MinerSample:
    return v1.MinerSample(device_id=dev, ip="127.0.0.5", available=True, state=v1.MinerState.MINING,
                          model="S19j Pro", serial=serial, mac=f"aa:bb:cc:00:00:{len(dev):02d}", power_w=3000.0,
                          hashrate_ths=100.0, pools=[v1.Pool(url=u) for u in pools])  # fmt: skip


def ingest(svc: Services, *miners: v1.MinerSample, seq: int = 1) -> None:
    svc.telemetry.ingest(v1.TelemetryBatch(site="s1", gateway="gw1", seq=seq, ts=clock.now(), miners=list(miners)))


def page(items: list[c.FeedItem], has_more: bool = False) -> c.FeedPage:
    return c.FeedPage(items=items, next_after=items[-1].seq if items else 0, has_more=has_more,
                      head_seq=max((i.seq for i in items), default=0))


def decisions(at: datetime) -> list[c.FeedItem]:
    return [
        c.FeedItem(seq=3, at=at, data=c.HscDecision(serial="SN-1", status=c.RegistrationStatus.INCLUDED, dpc="DPC-A",
                                                    registry_number="KZ-HSC-1", owner_bin=OWNER)),
        c.FeedItem(seq=5, at=at, data=c.LicenceState(bin=OWNER, name="Miner LLP", licence_number="L-1", subtype="I",
                                                     valid_from=date(2020, 1, 1), valid_to=date(2099, 1, 1),
                                                     status=c.LicenceStatus.ACTIVE)),
        c.FeedItem(seq=7, at=at, data=c.PoolAccreditation(id=1, name="KZ", endpoints=[POOL],
                                                          accreditation_number="A-1", valid_from=date(2020, 1, 1),
                                                          valid_to=date(2099, 1, 1))),
    ]  # fmt: skip


def test_an_unreachable_registry_loses_no_submission_and_backs_off(down: tuple[TestClient, Services, RegistryLink]
                                                                    ) -> None:
    _, svc, link = down
    ingest(svc, sample("m1", "SN-1"), sample("m2", None))
    assert svc.sightings.flush() == 2
    link.apply([c.ApplicationIn(kind=c.ApplicationKind.INCLUSION, serial="SN-1", owner_bin=OWNER, submitted_by="t",
                                submitted_at=clock.now())])  # fmt: skip
    counts = link.outbox.counts()
    assert (counts.pending, counts.sent, counts.refused) == (2, 0, 0)
    assert link.sync() == (0, 0)
    due = link.outbox.due(10)
    assert [i.kind for i in due] == ["applications"]  # the sightings backed off (30 s); the applications wait
    status = link.status()
    assert not status.reachable and status.synced_at is None and status.last_error
    with Session(svc.engine) as s:
        rows = list(s.execute(select(RegistryOutbox).order_by(col(RegistryOutbox.id))).scalars())
    assert [(r.kind, r.attempts, r.sent_at) for r in rows] == [("sightings", 1, None), ("applications", 0, None)]
    assert rows[0].next_attempt_at > rows[0].created_at
    batch = c.SightingBatch.model_validate_json(rows[0].payload)  # what the registry needs, no gateway message
    assert batch.site == "s1" and {s.serial for s in batch.sightings} == {"SN-1", None}
    assert all(s.hashing and s.pools == [POOL] for s in batch.sightings)
    # a restart keeps every submission: the outbox is the database
    assert RegistryLink(link.port, svc.engine, link.settings, clock.now).outbox.counts().pending == 2


def test_the_mirror_applies_whole_states_by_subject_and_cursor(down: tuple[TestClient, Services, RegistryLink]
                                                               ) -> None:
    _, _, link = down
    at = datetime(2026, 6, 1, tzinfo=UTC)
    assert link.mirror.apply(page(decisions(at), has_more=True)) == 3
    assert link.mirror.cursor().synced_at is None  # not at the head yet: not trusted yet
    older = c.FeedItem(seq=2, at=at, data=c.HscDecision(serial="SN-1", status=c.RegistrationStatus.SUBMITTED,
                                                        dpc="DPC-A"))  # fmt: skip
    newer = c.FeedItem(seq=9, at=at, data=c.HscDecision(serial="SN-1", status=c.RegistrationStatus.SUSPENDED,
                                                        dpc="DPC-A", owner_bin=OWNER, reason="inspection"))
    assert link.mirror.apply(page([older])) == 0
    cursor = link.mirror.cursor()
    assert cursor.after == 7 and cursor.synced_at is not None  # the cursor never goes back
    assert link.mirror.load()[1].decisions["SN-1"].status == "included"
    version = link.mirror.version
    assert link.mirror.apply(page([newer])) == 1 and link.mirror.version > version
    assert link.mirror.load()[1].decisions["SN-1"].status == "suspended"
    assert link.owners() == {"SN-1": OWNER}


def test_power_api_says_why_and_grid_keys_read_none_of_it(down: tuple[TestClient, Services, RegistryLink]) -> None:
    client, svc, link = down
    ingest(svc, sample("m1", "SN-1"), sample("m2", None), sample("m3", "SN-new"), sample("m4", "SN-1b", pools=()))
    h = {"X-API-Key": OPERATOR}
    rows = {r["device_id"]: r for r in client.get("/api/v1/registry-link/power", headers=h).json()}
    assert {d: r["reason"] for d, r in rows.items()} == dict.fromkeys(["m1", "m2", "m3", "m4"], "stale")
    link.mirror.apply(page(decisions(clock.now())))
    rows = {r["device_id"]: r for r in client.get("/api/v1/registry-link/power", headers=h).json()}
    assert {d: (r["powered"], r["reason"]) for d, r in rows.items()} == {
        "m1": (True, "included"), "m2": (False, "no_serial"), "m3": (False, "unknown"), "m4": (False, "unknown")}
    one = client.get("/api/v1/registry-link/power/m1", headers={"X-API-Key": REGULATOR}).json()
    assert one["powered"] and "KZ-HSC-1" in one["detail"]
    assert client.get("/api/v1/registry-link/power/nope", headers=h).status_code == 404
    assert client.get("/api/v1/registry-link/power", headers={"X-API-Key": GRID}).status_code == 403
    status = client.get("/api/v1/registry-link/status", headers=h).json()
    assert status["dpc"] == "DPC-A" and status["trusted_until"] is not None
    fleet = {r["device_id"]: r for r in client.get("/api/v1/dashboard/fleet", headers=h).json()}
    assert fleet["m1"]["power_right"] == "included" and fleet["m2"]["power_right"] == "no_serial"


def test_an_allowance_is_granted_by_an_operator_audited_and_submitted(down: tuple[TestClient, Services, RegistryLink]
                                                                      ) -> None:
    client, svc, link = down
    link.mirror.apply(page(decisions(clock.now())))
    ingest(svc, sample("m3", "SN-new"))
    h = {"X-API-Key": OPERATOR}
    assert client.get("/api/v1/registry-link/power/m3", headers=h).json()["reason"] == Reason.UNKNOWN
    body = {"device_id": "m3", "hours": 12, "reason": "burn-in after repair"}
    unknown = client.post("/api/v1/registry-link/allowances", json=body, headers=h)
    assert unknown.status_code == 422 and "not applied for" in unknown.text  # the registry would refuse it too
    pending = c.FeedItem(seq=8, at=clock.now(), data=c.HscDecision(serial="SN-new", status="submitted", dpc="DPC-A",
                                                                   owner_bin=OWNER))
    link.mirror.apply(page([pending]))
    assert client.get("/api/v1/registry-link/power/m3", headers=h).json()["reason"] == Reason.PENDING
    assert client.post("/api/v1/registry-link/allowances", json=body,
                       headers={"X-API-Key": REGULATOR}).status_code == 403
    made = client.post("/api/v1/registry-link/allowances", json=body, headers=h)
    assert made.status_code == 201, made.text
    row = made.json()
    assert row["serial"] == "SN-new" and row["granted_by"] == "operator:ops"
    assert client.get("/api/v1/registry-link/power/m3", headers=h).json()["reason"] == "allowance"
    submitted = link.outbox.items(row["submission"])
    assert submitted is not None and submitted.kind == "allowance" and submitted.sent_at is None
    assert c.AllowanceIn.model_validate_json(submitted.payload).granted_by == "operator:ops"
    listed = client.get("/api/v1/registry-link/allowances", headers={"X-API-Key": REGULATOR}).json()
    assert [a["id"] for a in listed] == [row["id"]]


def test_bad_payloads_name_every_field(down: tuple[TestClient, Services, RegistryLink]) -> None:
    client, svc, _ = down
    ingest(svc, sample("m2", None))
    h = {"X-API-Key": OPERATOR}
    bad = client.post("/api/v1/registry-link/applications", headers=h, json={"applications": [
        {"kind": "inclusion", "device_id": "m2", "owner_bin": OWNER},
        {"kind": "exclusion", "serial": "SN-9", "owner_bin": OWNER},
        {"kind": "inclusion", "owner_bin": OWNER}]})  # fmt: skip
    assert bad.status_code == 422
    fields = [".".join(str(p) for p in e["loc"][1:]) for e in bad.json()["detail"]]
    assert fields == ["applications.0.device_id", "applications.1.reason", "applications.2.serial"]
    ok = client.post("/api/v1/registry-link/applications", headers=h,
                     json={"applications": [{"kind": "inclusion", "serial": "SN-9", "owner_bin": OWNER}]})
    assert ok.status_code == 202 and ok.json()["count"] == 1
    assert client.post("/api/v1/registry-link/allowances", headers=h,
                       json={"serial": "SN-9", "hours": 1000, "reason": "x"}).status_code == 422
