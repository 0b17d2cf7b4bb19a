"""Wire-schema messages through a real mosquitto into the controller's ingest: live state, gateways, registry."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from controller.runtime import Services, build_services
from kuat.wire import v1
from tests.controller.conftest import make_settings
from tests.controller.wire import T0, Publisher, batch, miner, pdu, publisher, random_site
from tests.support.servers import Mosquitto

pytestmark = pytest.mark.integration


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def site() -> str:
    return random_site()


@pytest.fixture
def running(tmp_path: Path, broker: Mosquitto, site: str) -> Iterator[Services]:
    settings = make_settings(
        tmp_path, sites=[site], broker={"port": broker.port, "client_id": f"ctl-{random.random()}"},
        gateway_timeout_s=1.0,
    )
    svc = build_services(settings)
    assert svc.ingest is not None
    svc.ingest.start()
    assert svc.ingest.wait_connected(10), "controller did not connect to mosquitto"
    time.sleep(0.2)  # let the SUBACK land before the first publish
    yield svc
    svc.close()
    svc.engine.dispose()


@pytest.fixture
def pub(broker: Mosquitto) -> Iterator[Publisher]:
    with publisher(broker.port) as p:
        yield p


def test_telemetry_becomes_live_state_and_pending_registrations(running: Services, pub: Publisher, site: str) -> None:
    svc = running
    miners = [miner(i) for i in range(1, 4)]
    pub.send(v1.topic(site, "gw1", "telemetry"), v1.dumps(batch(1, T0, miners, [pdu(1)], site=site)))
    wait_for(lambda: svc.metrics.samples_total == 4, what="4 samples ingested")
    view = svc.fleet.devices(site=site, kind="miner")
    assert view["total"] == 3
    first = view["devices"][0]
    assert (first["serial"], first["model"], first["ip"], first["power_w"]) == ("SN000001", "S19j Pro",
                                                                                 "127.60.0.2", 3000.0)
    assert svc.sightings.flush() == 3
    registry = svc.registry
    assert registry is not None
    hsc = registry.get_hsc("SN000002")
    assert hsc.status == "pending"
    assert (hsc.mac, hsc.model, hsc.site, hsc.gateway, hsc.ip) == (miners[1].mac, "S19j Pro", site, "gw1",
                                                                   miners[1].ip)
    assert hsc.pools == ["stratum+tcp://pool.kz-accredited.example:3333"]
    # the same identities again: nothing new handed to the registry
    pub.send(v1.topic(site, "gw1", "telemetry"), v1.dumps(batch(2, T0 + timedelta(seconds=10), miners, site=site)))
    wait_for(lambda: svc.metrics.samples_total == 7, what="second batch")
    assert svc.sightings.flush() == 0
    # a changed pool is handed over
    moved = miner(1, pools=[v1.Pool(url="stratum+tcp://elsewhere.example:3333", user="x")])
    pub.send(v1.topic(site, "gw1", "telemetry"), v1.dumps(batch(3, T0 + timedelta(seconds=20), [moved], site=site)))
    wait_for(lambda: svc.metrics.samples_total == 8, what="third batch")
    assert svc.sightings.flush() == 1
    assert registry.get_hsc("SN000001").pools == ["stratum+tcp://elsewhere.example:3333"]


def test_bad_messages_are_counted_and_ingest_goes_on(running: Services, pub: Publisher, site: str) -> None:
    svc = running
    tele = v1.topic(site, "gw1", "telemetry")
    pub.send(tele, b"{not json")
    future = json.loads(v1.dumps(batch(1, T0, [miner(1)], site=site)))
    future["schema"] = "kuat.telemetry/2"
    pub.send(tele, json.dumps(future).encode())
    missing = json.loads(v1.dumps(batch(2, T0, [miner(1)], site=site)))
    del missing["miners"][0]["ip"]
    pub.send(tele, json.dumps(missing).encode())
    pub.send(v1.topic(site, "gw9", "telemetry"), v1.dumps(batch(3, T0, [miner(1)], site=site)))  # says gw1
    pub.send(tele, v1.dumps(batch(4, T0, [miner(1)], site=site)))
    wait_for(lambda: svc.metrics.samples_total == 1, what="the one good batch")
    wait_for(lambda: sum(svc.metrics.rejected.values()) == 4, what="four rejections")
    assert dict(svc.metrics.rejected) == {"bad_json": 1, "schema_version": 1, "invalid": 1, "topic_mismatch": 1}
    assert "kuat_ingest_rejected_total{reason=\"schema_version\"} 1" in svc.metrics.render()


def test_gateway_last_will_and_timeout(running: Services, pub: Publisher, site: str) -> None:
    svc = running
    state = v1.topic(site, "gw1", "state")
    pub.send(state, v1.dumps(v1.GatewayState(gateway="gw1", online=True, ts=T0, agent_version="0.1", devices=3)))
    wait_for(lambda: svc.gateways.is_online(site, "gw1"), what="gateway online")
    pub.send(state, v1.dumps(v1.GatewayState(gateway="gw1", online=False, ts=T0)))  # what the last will says
    wait_for(lambda: not svc.gateways.is_online(site, "gw1"), what="gateway offline by will")
    listing = svc.gateways.listing()[0]
    assert listing["reason"].startswith("last will") and listing["agent_version"] == "0.1"
    pub.send(v1.topic(site, "gw2", "telemetry"), v1.dumps(batch(1, T0, [miner(5)], site=site, gateway="gw2")))
    wait_for(lambda: svc.gateways.is_online(site, "gw2"), what="gw2 online by telemetry")
    assert svc.fleet.devices(site=site)["devices"][0]["available"]
    gone = svc.gateways.check_timeouts(now=time.time() + 5)
    assert [g.gateway for g in gone] == ["gw2"]
    assert not svc.fleet.devices(site=site)["devices"][0]["available"]  # its devices count as unavailable


def test_real_agent_last_will_through_the_broker(running: Services, broker: Mosquitto, site: str) -> None:
    import paho.mqtt.client as mqtt

    svc = running
    agent = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"agent-{random.random()}")
    agent.will_set(v1.topic(site, "gw7", "state"), v1.dumps(v1.GatewayState(gateway="gw7", online=False, ts=T0)),
                   qos=1, retain=True)
    agent.connect("127.0.0.1", broker.port, keepalive=5)
    agent.loop_start()
    agent.publish(v1.topic(site, "gw7", "state"), v1.dumps(v1.GatewayState(gateway="gw7", online=True, ts=T0)),
                  qos=1, retain=True).wait_for_publish(5)
    wait_for(lambda: svc.gateways.is_online(site, "gw7"), what="gw7 online")
    agent.loop_stop()
    agent.socket().close()  # die without DISCONNECT: the broker publishes the will
    wait_for(lambda: not svc.gateways.is_online(site, "gw7"), timeout=20, what="last will delivered")


def test_ingest_survives_a_broker_restart(running: Services, broker: Mosquitto, site: str) -> None:
    svc = running
    with publisher(broker.port) as pub:
        pub.send(v1.topic(site, "gw1", "telemetry"), v1.dumps(batch(1, T0, [miner(1)], site=site)))
    wait_for(lambda: svc.metrics.samples_total == 1, what="first batch")
    broker.stop()
    wait_for(lambda: not svc.ingest.connected.is_set(), what="the controller noticing")  # type: ignore[union-attr]
    broker.start()
    wait_for(lambda: svc.ingest.connected.is_set(), timeout=30, what="reconnect")  # type: ignore[union-attr]
    time.sleep(0.3)  # the re-subscription (sent on connect) lands
    with publisher(broker.port) as pub:
        pub.send(v1.topic(site, "gw1", "telemetry"), v1.dumps(batch(2, T0 + timedelta(seconds=10), [miner(1)],
                                                                    site=site)))  # fmt: skip
    wait_for(lambda: svc.metrics.samples_total == 2, what="ingest after the restart")
    assert svc.live.find(miner(1).device_id)[0].ts == T0 + timedelta(seconds=10)


def test_topics() -> None:
    from controller.ingest import Rejected, parse_topic, subscriptions

    assert subscriptions([]) == ["kuat/v1/+/gw/+/telemetry", "kuat/v1/+/gw/+/state", "kuat/v1/+/gw/+/ack"]
    assert subscriptions(["a", "b"])[3] == "kuat/v1/b/gw/+/telemetry"
    assert parse_topic("kuat/v1/kz1/gw/gw2/ack") == ("kz1", "gw2", "ack")
    for bad in ("kuat/v1/kz1/gw/gw2/cmd", "kuat/v2/kz1/gw/gw2/ack", "kuat/v1/kz1/grid/signal", "x"):
        with pytest.raises(Rejected):
            parse_topic(bad)


def test_tls_with_a_private_ca_and_a_password(tmp_path: Path) -> None:
    from tests.agent.test_mqtt_agent import KEEP_USER, _password_conf, _tls_material

    pki = _tls_material(tmp_path)
    conf = (f"{_password_conf(tmp_path)}cafile {pki['ca']}\ncertfile {pki['srv_cert']}\nkeyfile {pki['srv_key']}\n"
            "require_certificate true\n")  # fmt: skip
    assert KEEP_USER in conf
    site = random_site()
    with Mosquitto(extra_conf=conf) as tls_broker:
        settings = make_settings(tmp_path, sites=[site], broker={
            "port": tls_broker.port, "client_id": f"ctl-{site}", "tls": True, "ca_file": str(pki["ca"]),
            "cert_file": str(pki["gw_cert"]), "key_file": str(pki["gw_key"]), "username": "gw1",
            "password": "s3cret-Pw",
        })  # fmt: skip
        svc = build_services(settings)
        assert svc.ingest is not None
        svc.ingest.start()
        try:
            assert svc.ingest.wait_connected(15), "no TLS connection"
            time.sleep(0.2)
            import paho.mqtt.client as mqtt

            agent = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"agent-{site}")
            agent.tls_set(ca_certs=str(pki["ca"]), certfile=str(pki["gw_cert"]), keyfile=str(pki["gw_key"]))
            agent.username_pw_set("gw1", "s3cret-Pw")
            agent.connect("127.0.0.1", tls_broker.port)
            agent.loop_start()
            agent.publish(v1.topic(site, "gw1", "telemetry"), v1.dumps(batch(1, T0, [miner(1)], site=site)),
                          qos=1).wait_for_publish(10)  # fmt: skip
            wait_for(lambda: svc.metrics.samples_total == 1, what="telemetry over TLS")
            agent.disconnect()
            agent.loop_stop()
        finally:
            svc.close()
