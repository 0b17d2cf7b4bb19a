"""The alert service on real controller services, with a real SMTP server (aiosmtpd) and a real webhook receiver
on 127.0.0.1 that checks the HMAC signature: firing, repeat, acknowledgement, resolution, retries with backoff,
failures recorded, order kept per channel, nothing sent twice, and sustain timers that survive a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.runtime import build_services
from tests.alerts.receivers import SmtpServer, WebhookReceiver
from tests.alerts.site import SECRET, Site, make_site, miner, settings
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(SECRET)
    yield receiver
    receiver.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kuat.sqlite'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database()


@pytest.fixture
def site(tmp_path: Path, smtp: SmtpServer, hook: WebhookReceiver, database_url: str) -> Iterator[Site]:
    s = make_site(settings(tmp_path, smtp.port, database_url))
    s.alerts.put_channel("ops-hook", {"kind": "webhook", "url": hook.url, "secret": SECRET}, "operator:test")
    s.alerts.put_channel("night-mail", {"kind": "email", "recipients": ["duty@site.test", "chief@site.test"]},
                         "operator:test")
    yield s
    s.services.close()
    s.services.engine.dispose()


def hot_rule(site: Site, **over: object) -> int:
    doc = {"name": "hot machine", "condition": "temperature_high", "threshold": 85, "sustain_s": 60,
           "severity": "critical", "channels": ["dashboard", "ops-hook", "night-mail"], **over}
    return int(site.alerts.create_rule(doc, "operator:test")["id"])


def test_fire_repeat_acknowledge_resolve_reach_webhook_and_smtp(site: Site, hook: WebhookReceiver,
                                                                 smtp: SmtpServer) -> None:
    hot_rule(site, repeat_s=600)
    site.feed(miner(1, temp_c=91.5), miner(2, temp_c=70))
    site.at(0)
    assert site.alerts.evaluate()["transitions"] == [("pending", "machine:kz1/02:00:00:00:0a:01")]
    site.at(59)
    assert site.alerts.evaluate()["transitions"] == []
    site.at(60)
    out = site.alerts.evaluate()
    assert out["transitions"] == [("firing", "machine:kz1/02:00:00:00:0a:01")] and out["queued"] == 3
    assert site.alerts.deliver() == {"sent": 2, "retry": 0, "failed": 0}  # the dashboard's needs no sending
    [got] = hook.received
    assert got.signature_ok and got.headers["X-Kuat-Event"] == "firing"
    doc = got.doc
    assert doc["event"] == "firing" and doc["alert"]["rule"] == "hot machine" and doc["alert"]["value"] == 91.5
    assert doc["alert"]["severity"] == "critical" and "91.5 °C" in doc["alert"]["message"]
    assert int(got.headers["X-Kuat-Delivery"]) == doc["delivery_id"]
    [mail] = smtp.messages
    assert mail["Subject"].startswith("[Kuat CRITICAL] FIRING: hot machine")
    assert smtp.envelopes[0] == ["duty@site.test", "chief@site.test"]
    text = mail.get_payload()
    assert "Since:      2026-12-02 11:00:00 Astana (UTC+5)" in text  # 06:00 UTC, labelled Astana time
    assert site.alerts.deliver() == {"sent": 0, "retry": 0, "failed": 0}  # nothing sent twice

    site.at(659)
    site.alerts.evaluate()
    site.at(660)  # 600 s after the firing notification
    assert site.alerts.evaluate()["transitions"] == [("repeat", "machine:kz1/02:00:00:00:0a:01")]
    site.alerts.deliver()
    assert hook.events() == ["firing", "repeat"] and len(smtp.messages) == 2

    [alert] = site.alerts.alerts()
    acked = site.alerts.acknowledge(alert["id"], "operator:anna")
    assert acked["acknowledged_by"] == "operator:anna"
    site.at(5000)
    assert site.alerts.evaluate()["transitions"] == []  # acknowledged: no more repeats
    site.feed(miner(1, temp_c=80), miner(2, temp_c=70))
    site.at(5010)
    assert site.alerts.evaluate()["transitions"] == [("resolved", "machine:kz1/02:00:00:00:0a:01")]
    site.alerts.deliver()
    assert hook.events() == ["firing", "repeat", "resolved"]
    assert all(r.signature_ok for r in hook.received)
    assert smtp.subjects()[-1].startswith("[Kuat CRITICAL] RESOLVED: hot machine")
    assert hook.received[-1].doc["alert"]["acknowledged_by"] == "operator:anna"
    detail = site.alerts.alert(alert["id"])
    assert [e["event"] for e in detail["events"]] == ["pending", "firing", "repeat", "acknowledged", "resolved"]
    assert detail["events"][3]["actor"] == "operator:anna"
    assert sorted((d["channel"], d["event"], d["status"]) for d in detail["deliveries"]) == sorted(
        (c, e, "sent") for c in ("dashboard", "ops-hook", "night-mail") for e in ("firing", "repeat", "resolved"))


def test_failed_sends_are_retried_with_backoff_then_recorded_as_failed(site: Site, hook: WebhookReceiver) -> None:
    hot_rule(site, sustain_s=0, channels=["ops-hook"])
    site.feed(miner(1, temp_c=95))
    site.alerts.evaluate()
    hook.fail_next = 2
    assert site.alerts.deliver() == {"sent": 0, "retry": 1, "failed": 0}
    site.at(0.5)
    assert site.alerts.deliver() == {"sent": 0, "retry": 0, "failed": 0}  # backoff: first retry after 1 s
    site.at(1)
    assert site.alerts.deliver()["retry"] == 1  # second failure; next after 2 s more
    site.at(2.9)
    assert site.alerts.deliver()["sent"] == 0
    site.at(3)
    assert site.alerts.deliver() == {"sent": 1, "retry": 0, "failed": 0}
    [d] = site.alerts.deliveries()
    assert (d["status"], d["attempts"], hook.refused, len(hook.received)) == ("sent", 3, 2, 1)

    # a receiver that never takes it: failed after max_attempts (4), with the error kept
    site.feed(miner(1, temp_c=70))
    site.at(10)
    site.alerts.evaluate()  # resolved
    hook.fail_next = 100
    for t in (10, 11, 13, 17, 25):
        site.at(t)
        site.alerts.deliver()
    failed = site.alerts.deliveries("failed")
    assert len(failed) == 1 and failed[0]["attempts"] == 4 and "HTTP 500" in failed[0]["last_error"]
    assert site.alerts.counters.failed_total == 1


def test_a_resolved_never_overtakes_its_firing_on_a_channel(site: Site, hook: WebhookReceiver) -> None:
    hot_rule(site, sustain_s=0, channels=["ops-hook"])
    site.feed(miner(1, temp_c=95))
    site.alerts.evaluate()
    hook.fail_next = 1
    site.alerts.deliver()  # the firing fails once: retry in 1 s
    site.feed(miner(1, temp_c=70))
    site.at(0.2)
    site.alerts.evaluate()  # resolved, queued behind the firing
    assert site.alerts.deliver() == {"sent": 0, "retry": 0, "failed": 0}
    site.at(1.5)
    assert site.alerts.deliver()["sent"] == 2
    assert hook.events() == ["firing", "resolved"]


def test_sustain_timer_and_open_alerts_survive_a_restart(tmp_path: Path, smtp: SmtpServer,
                                                         hook: WebhookReceiver) -> None:
    cfg = settings(tmp_path, smtp.port)
    first = make_site(cfg)
    first.alerts.put_channel("ops-hook", {"kind": "webhook", "url": hook.url, "secret": SECRET}, "operator:test")
    hot_rule(first, channels=["ops-hook"], sustain_s=300)
    first.feed(miner(1, temp_c=95))
    first.alerts.evaluate()  # pending since T0
    first.services.close()

    second = make_site(cfg)  # a new process on the same database, its live state empty
    second.at(100)
    assert second.alerts.evaluate()["transitions"] == []  # the machine not seen yet: nothing changes
    second.feed(miner(1, temp_c=96))
    second.at(299)
    assert second.alerts.evaluate()["transitions"] == []
    second.at(300)  # 300 s after the first process saw it
    assert second.alerts.evaluate()["transitions"] == [("firing", "machine:kz1/02:00:00:00:0a:01")]
    second.alerts.deliver()
    second.services.close()

    third = make_site(cfg)
    third.feed(miner(1, temp_c=96))
    third.at(400)
    assert third.alerts.evaluate()["transitions"] == []  # still firing: not fired again after a restart
    assert third.alerts.deliver()["sent"] == 0
    assert hook.events() == ["firing"]
    third.services.close()


def test_conditions_from_the_live_state_offline_hashrate_boards_gateway(site: Site) -> None:
    a = site.alerts
    for doc in ({"name": "off", "condition": "machine_offline"}, {"name": "slow", "condition": "hashrate_low"},
                {"name": "board", "condition": "board_dead"},
                {"name": "gw", "condition": "gateway_silent", "threshold": 60},
                {"name": "AL-9 only", "condition": "machine_offline", "scope": {"machines": ["AL-9"]}}):
        a.create_rule(doc, "operator:test")
    site.feed(miner(1, available=False), miner(2, ths=150), miner(3, boards_ok=(True, False, True)))
    fired = sorted(a.evaluate()["transitions"])
    assert fired == [  # the gateway was heard just now: not silent
        ("firing", "machine:kz1/02:00:00:00:0a:01"), ("firing", "machine:kz1/02:00:00:00:0a:02"),
        ("firing", "machine:kz1/02:00:00:00:0a:03")]
    by_rule = {x["rule"]: x["subject"] for x in a.alerts()}
    assert by_rule == {"off": "machine:kz1/02:00:00:00:0a:01", "slow": "machine:kz1/02:00:00:00:0a:02",
                       "board": "machine:kz1/02:00:00:00:0a:03"}
    gw = site.services.live.gateways[("kz1", "gw1")]
    gw.last_seen = (gw.last_seen or 0) - 120  # its last message two minutes ago
    assert a.evaluate()["transitions"] == [("firing", "gateway:kz1/gw1")]


def test_webhook_secret_is_write_only_and_kept_on_update(site: Site, hook: WebhookReceiver) -> None:
    views = {c["name"]: c for c in site.alerts.channels()}
    assert views["ops-hook"]["has_secret"] is True and "secret" not in views["ops-hook"]
    assert SECRET not in json.dumps(site.alerts.channels())
    site.alerts.put_channel("ops-hook", {"kind": "webhook", "url": hook.url + "?v=2"}, "operator:test")
    sent = site.alerts.test_send("ops-hook", "operator:test")
    assert sent["status"] == "sent" and hook.received[-1].signature_ok  # the stored secret still signs
    assert hook.received[-1].doc["event"] == "test"


def test_test_send_to_a_relay_that_is_down_reports_the_error(tmp_path: Path) -> None:
    from tests.support.servers import free_port

    s = make_site(settings(tmp_path, free_port()))  # nothing listens there
    try:
        s.alerts.put_channel("mail", {"kind": "email", "recipients": ["a@b.test"]}, "operator:test")
        out = s.alerts.test_send("mail", "operator:test")
        assert out["status"] == "failed" and "ConnectionRefusedError" in out["last_error"]
    finally:
        s.services.close()


def test_restarted_services_see_rules_from_the_database(tmp_path: Path) -> None:
    cfg = settings(tmp_path)
    a = build_services(cfg, with_ingest=False)
    assert a.alerts is not None
    a.alerts.create_rule({"name": "x", "condition": "grid_signal_stale"}, "operator:test")
    a.close()
    b = build_services(cfg, with_ingest=False)
    assert b.alerts is not None and [r["name"] for r in b.alerts.rules()] == ["x"]
    b.close()
