"""/api/v1/alerts through the controller's app: roles, one 422 naming every bad field, write-only secrets,
acknowledgement recording who, 409 for an ended alert, site power against the quota limit, compliance
violations from the registry, the SSE stream resuming after Last-Event-ID, and the /metrics figures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from kuat import clock
from quota.timebase import ASTANA, hours_in_day
from registry.schemas import BulkApproveItem, DpcIn, LicenseeIn
from serverkit.timeutil import astana_date
from tests.alerts.site import SECRET, SITE, Site, as_, make_site, miner, settings

pytestmark = pytest.mark.integration


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = make_site(settings(tmp_path))
    yield s
    s.services.close()
    s.services.engine.dispose()


@pytest.fixture
def client(site: Site) -> Iterator[TestClient]:
    with TestClient(create_app(site.services.settings, site.services)) as c:
        yield c


def test_a_bad_rule_is_one_422_naming_every_field(client: TestClient) -> None:
    r = client.post("/api/v1/alerts/rules", headers=as_("operator"),
                    json={"name": "", "condition": "temperature_high", "threshold": 500, "sustain_s": "long",
                          "scope": {"racks": "A1"}, "channels": ["pager"], "severity": "loud"})  # fmt: skip
    assert r.status_code == 422
    locs = {tuple(d["loc"]) for d in r.json()["detail"]}
    assert locs == {("body", "name"), ("body", "threshold"), ("body", "sustain_s"), ("body", "scope", "racks"),
                    ("body", "channels"), ("body", "severity")}
    bad_json = client.post("/api/v1/alerts/rules", headers={**as_("operator"), "content-type": "application/json"},
                           content=b"{not json")  # fmt: skip
    assert bad_json.status_code == 422 and bad_json.json()["detail"][0]["loc"] == ["body", "body"]


def test_roles_crud_and_the_conditions_list(client: TestClient) -> None:
    doc = {"name": "over the limit", "condition": "site_power_high", "threshold": 0.95, "scope": {"sites": [SITE]}}
    assert client.post("/api/v1/alerts/rules", headers=as_("regulator"), json=doc).status_code == 403
    assert client.get("/api/v1/alerts/rules").status_code == 401
    created = client.post("/api/v1/alerts/rules", headers=as_("operator"), json=doc)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert (rule["level"], rule["threshold"], rule["actor"]) == ("site", 0.95, "operator:t-operator")
    rid = rule["id"]
    put = client.put(f"/api/v1/alerts/rules/{rid}", headers=as_("operator"), json={**doc, "threshold": 1.0})
    assert put.status_code == 200 and put.json()["threshold"] == 1.0
    assert [r["name"] for r in client.get("/api/v1/alerts/rules", headers=as_("grid")).json()] == ["over the limit"]
    assert client.delete(f"/api/v1/alerts/rules/{rid}", headers=as_("operator")).status_code == 204
    assert client.get(f"/api/v1/alerts/rules/{rid}", headers=as_("operator")).status_code == 404
    conds = {c["condition"]: c for c in client.get("/api/v1/alerts/conditions", headers=as_("operator")).json()}
    assert len(conds) == 11 and conds["hashrate_low"]["default"] == 0.8 and conds["excursion"]["scope"] == ["sites"]


def test_channel_secrets_are_write_only(client: TestClient) -> None:
    bad = client.put("/api/v1/alerts/channels/hook", headers=as_("operator"),
                     json={"kind": "webhook", "url": "ftp://x", "secret": "short", "recipients": ["a@b"]})
    assert bad.status_code == 422
    assert {d["loc"][-1] for d in bad.json()["detail"]} == {"url", "secret", "recipients"}
    ok = client.put("/api/v1/alerts/channels/hook", headers=as_("operator"),
                    json={"kind": "webhook", "url": "http://127.0.0.1:9/h", "secret": SECRET})
    assert ok.status_code == 200 and ok.json()["has_secret"] is True
    listed = client.get("/api/v1/alerts/channels", headers=as_("operator"))
    assert SECRET not in listed.text and [c["name"] for c in listed.json()] == ["dashboard", "hook"]
    assert SECRET not in client.get("/openapi.json").text
    in_use = client.post("/api/v1/alerts/rules", headers=as_("operator"),
                         json={"name": "r", "condition": "grid_signal_stale", "channels": ["hook"]})
    assert in_use.status_code == 201
    assert client.delete("/api/v1/alerts/channels/hook", headers=as_("operator")).status_code == 409


def test_a_deleted_channel_is_gone_but_keeps_who_deleted_it(site: Site, client: TestClient) -> None:
    from sqlmodel import Session, select

    from controller.alerts.models import AlertChannel

    hook = {"kind": "webhook", "url": "http://127.0.0.1:9/h", "secret": SECRET}
    assert client.put("/api/v1/alerts/channels/hook", headers=as_("operator"), json=hook).status_code == 200
    assert client.delete("/api/v1/alerts/channels/hook", headers=as_("operator")).status_code == 204
    assert [c["name"] for c in client.get("/api/v1/alerts/channels", headers=as_("operator")).json()] == ["dashboard"]
    assert client.delete("/api/v1/alerts/channels/hook", headers=as_("operator")).status_code == 404
    rule = {"name": "r", "condition": "grid_signal_stale", "channels": ["hook"]}
    assert client.post("/api/v1/alerts/rules", headers=as_("operator"), json=rule).status_code == 422  # no such
    with Session(site.services.engine) as s:
        (row,) = s.exec(select(AlertChannel)).all()
    assert row.deleted_at is not None and row.actor.startswith("operator:")
    no_secret = {"kind": "webhook", "url": "http://127.0.0.1:9/h"}  # the deleted one's secret does not come back
    assert client.put("/api/v1/alerts/channels/hook", headers=as_("operator"), json=no_secret).status_code == 422
    again = client.put("/api/v1/alerts/channels/hook", headers=as_("operator"), json=hook)
    assert again.status_code == 200 and again.json()["name"] == "hook"


def test_site_power_over_the_limit_fires_acknowledged_by_the_key_then_resolves(site: Site,
                                                                               client: TestClient) -> None:
    quota = site.services.quota
    assert quota is not None
    quota.set_site_limits(SITE, connection_kw=10.0, actor="test")  # 3 x 3.5 kW = 10.5 kW against 10 kW
    today = astana_date(clock.now())
    quota.push_schedule(SITE, today, [1000.0] * hours_in_day(today, ASTANA), "test")  # the connection binds
    client.post("/api/v1/alerts/rules", headers=as_("operator"),
                json={"name": "over", "condition": "site_power_high", "threshold": 1.0})
    site.feed(miner(1), miner(2), miner(3))
    site.alerts.evaluate()
    [alert] = client.get("/api/v1/alerts", headers=as_("grid")).json()
    assert alert["status"] == "firing" and alert["subject"] == f"site:{SITE}" and alert["value"] == 10_500
    assert "10.5 kW against 10.0 kW" in alert["message"]
    ack = client.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=as_("operator"))
    assert ack.status_code == 200 and ack.json()["acknowledged_by"] == "operator:t-operator"
    assert client.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=as_("grid")).status_code == 403
    site.feed(miner(1), miner(2), miner(3, available=False))  # 7 kW
    site.at(30)
    site.alerts.evaluate()
    assert client.get("/api/v1/alerts", headers=as_("operator")).json() == []
    past = client.get("/api/v1/alerts?status=resolved", headers=as_("operator")).json()
    assert [a["id"] for a in past] == [alert["id"]]
    again = client.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=as_("operator"))
    assert again.status_code == 409
    history = client.get("/api/v1/alerts/history", headers=as_("operator")).json()
    assert [(e["event"], e["actor"]) for e in history] == [("firing", None), ("acknowledged", "operator:t-operator"),
                                                           ("resolved", None)]
    metrics = client.get("/metrics").text
    assert "kuat_alerts_firing 0" in metrics and "kuat_alert_evaluations 2" in metrics


def test_compliance_violations_open_and_resolve_with_the_registry(site: Site) -> None:
    site.alerts.create_rule({"name": "compliance", "condition": "compliance_violation"}, "operator:test")
    registry = site.services.registry
    assert registry is not None
    site.feed(miner(1))  # never registered, mining
    site.services.sightings.flush()
    registry.check_compliance()
    site.alerts.evaluate()
    [alert] = site.alerts.alerts()
    assert (alert["status"], alert["site"]) == ("firing", SITE)
    assert alert["message"] == "compliance violation unregistered_mining on AL-1"
    host = registry.create_licensee(LicenseeIn(bin="123456789013", name="Host LLP", licence_number="DM-9",
                                               subtype="I", valid_from=date(2026, 1, 1)), "test")  # fmt: skip
    dpc = registry.create_dpc(DpcIn(name=SITE, address="Ekibastuz", zone="North", operator_id=host.id,
                                    capacity_mw=5), "test")  # fmt: skip
    registry.bulk_approve([BulkApproveItem(serial="AL-1", owner_id=host.id, dpc_id=dpc.id)], "operator:test")
    registry.check_compliance()
    assert "unregistered_mining" not in {v.kind for v in registry.violations()}
    site.at(60)
    site.alerts.evaluate()
    assert alert["id"] in {a["id"] for a in site.alerts.alerts("resolved")}
    assert alert["id"] not in {a["id"] for a in site.alerts.alerts()}


def test_stream_sends_events_after_last_event_id(site: Site, client: TestClient) -> None:
    site.alerts.create_rule({"name": "hot", "condition": "temperature_high", "threshold": 80}, "operator:test")
    site.feed(miner(1, temp_c=90))
    site.alerts.evaluate()
    site.feed(miner(1, temp_c=70))
    site.at(10)
    site.alerts.evaluate()
    headers = {"X-API-Key": "op-key-0123456789", "Last-Event-ID": "1"}
    with client.stream("GET", "/api/v1/alerts/stream", headers=headers) as r:
        assert r.status_code == 200
        lines: list[str] = []
        for line in r.iter_lines():
            lines.append(line)
            if line.startswith("event: alerts"):
                break
    ids = [line for line in lines if line.startswith("id: ")]
    assert ids == ["id: 2"]  # the firing (id 1) was seen already: only the resolution comes
    assert any('"event": "resolved"' in line for line in lines)


def test_check_config_masks_the_smtp_password(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from controller.cli import check_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"database_url: sqlite:///{tmp_path}/x.sqlite\nalerts:\n  smtp: {{host: mail.test, port: 587, "
                   "starttls: true, username: kuat, password: relay-password-123}\n")
    out = CliRunner().invoke(check_config, ["-c", str(cfg)])
    assert out.exit_code == 0, out.output
    assert "relay-password-123" not in out.output and '"password": "***"' in out.output


def test_grid_signal_stale_and_excursions_from_the_quota_side(site: Site) -> None:
    from datetime import timedelta

    from controller.quota.ledger import write_excursions
    from kuat.wire import v1
    from quota.ledger import Excursion

    quota = site.services.quota
    assert quota is not None
    quota.set_site_limits(SITE, connection_kw=100.0, actor="test")
    quota.set_grid_contract(SITE, contract_mw=0.1, stale_after_s=240, actor="test")  # no reading yet: stale
    for doc in ({"name": "grid", "condition": "grid_signal_stale"},
                {"name": "over the allotment", "condition": "excursion", "threshold": 0.5}):
        site.alerts.create_rule(doc, "operator:test")
    site.feed(miner(1))
    site.alerts.evaluate()
    assert [a["rule"] for a in site.alerts.alerts()] == ["grid"]  # no excursion booked yet
    now = clock.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    write_excursions(site.services.engine, SITE, [Excursion(hour, hour + timedelta(seconds=60), 2000.0, 0.8,
                                                            "allotment")])  # 0.8 kWh > 0.5 this hour
    assert quota.on_grid_signal(SITE, v1.GridSignal(target_pct=80, ts=clock.now()))  # a fresh reading
    site.at(30)
    site.alerts.evaluate()
    [alert] = site.alerts.alerts()
    assert alert["rule"] == "over the allotment" and alert["value"] == 0.8
    assert "0.800 kWh above its allotment" in alert["message"]
    assert [a["rule"] for a in site.alerts.alerts("resolved")] == ["grid"]
