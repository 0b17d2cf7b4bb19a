"""The production broker as the controller role configures it: TLS only, per-gateway users, ACLs.

mosquitto runs with the role's rendered conf.d, password file and ACL; clients are paho-mqtt over TLS with the CA
from deploy/tls/make-certs.sh. Absence is proven with barriers, not timeouts: a forbidden message is published
before an allowed one on the same connection, and mosquitto delivers in order, so when the allowed one arrives the
forbidden one would already have arrived.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from kuat.wire import v1
from tests.deploy.conftest import Deployed, RenderedBroker
from tests.deploy.mqtt_clients import WAIT_S, TlsClient

pytestmark = pytest.mark.integration

Connect = Callable[[str], TlsClient]

@pytest.fixture
def connect(deployed: Deployed, rendered_broker: RenderedBroker) -> Iterator[Connect]:
    opened: list[TlsClient] = []

    def _connect(user: str) -> TlsClient:
        client = TlsClient(rendered_broker, user, deployed.scratch.passwords[user])
        assert client.connect() == mqtt.ReasonCode(mqtt.PacketTypes.CONNACK, "Success")
        opened.append(client)
        return client

    yield _connect
    for client in opened:
        client.close()


def topic(deployed: Deployed, gateway: str, kind: str) -> str:
    return v1.topic(deployed.scratch.site, gateway, kind)  # type: ignore[arg-type]


def test_anonymous_and_wrong_password_are_refused(deployed: Deployed, rendered_broker: RenderedBroker) -> None:
    anonymous = TlsClient(rendered_broker, None, None)
    wrong = TlsClient(rendered_broker, "gw1", "not-the-password-of-gw1")
    for client in (anonymous, wrong):
        answer = client.connect()
        client.close()
        assert isinstance(answer, mqtt.ReasonCode) and answer.is_failure, answer


def test_plain_tcp_is_refused_on_the_tls_listener(deployed: Deployed, rendered_broker: RenderedBroker) -> None:
    plain = TlsClient(rendered_broker, "gw1", deployed.scratch.passwords["gw1"], tls=False)
    answer = plain.connect()
    plain.close()
    assert not (isinstance(answer, mqtt.ReasonCode) and not answer.is_failure), answer


def test_tls_certificate_must_come_from_the_kuat_ca(deployed: Deployed, rendered_broker: RenderedBroker) -> None:
    context = ssl.create_default_context()  # the system CAs only: the broker's certificate is not among them
    with socket.create_connection(("127.0.0.1", rendered_broker.port), timeout=WAIT_S) as raw, pytest.raises(
        ssl.SSLCertVerificationError
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_gateway_publishes_its_own_telemetry_but_not_another_gateways(deployed: Deployed, connect: Connect) -> None:
    controller, gw1 = connect("kuat-controller"), connect("gw1")
    controller.subscribe(f"{v1.TOPIC_ROOT}/+/gw/+/telemetry")
    gw1.publish(topic(deployed, "gw2", "telemetry"), b"forged by gw1")
    gw1.publish(topic(deployed, "gw1", "telemetry"), b"own telemetry")
    first = controller.next_message()
    assert (first.topic, first.payload) == (topic(deployed, "gw1", "telemetry"), b"own telemetry")
    assert controller.messages.empty()


def test_gateway_reads_only_its_own_commands(deployed: Deployed, connect: Connect) -> None:
    controller, gw1, gw2 = connect("kuat-controller"), connect("gw1"), connect("gw2")
    gw1.subscribe(f"{v1.TOPIC_ROOT}/{deployed.scratch.site}/gw/+/cmd")  # tries to listen to every gateway
    gw1.subscribe(topic(deployed, "gw2", "cmd"))
    gw2.subscribe(topic(deployed, "gw2", "cmd"))
    controller.publish(topic(deployed, "gw2", "cmd"), b"for gw2")
    controller.publish(topic(deployed, "gw1", "cmd"), b"for gw1")
    assert gw2.next_message().payload == b"for gw2"  # the controller may command gw2 ...
    mine = gw1.next_message()  # ... and gw1 gets its own command, after gw2's would have come
    assert (mine.topic, mine.payload) == (topic(deployed, "gw1", "cmd"), b"for gw1")
    assert gw1.messages.empty()


def test_gateway_cannot_command_another_gateway(deployed: Deployed, connect: Connect) -> None:
    controller, gw1, gw2 = connect("kuat-controller"), connect("gw1"), connect("gw2")
    gw2.subscribe(topic(deployed, "gw2", "cmd"))
    gw1.publish(topic(deployed, "gw2", "cmd"), b"forged command")
    gw1.publish(topic(deployed, "gw1", "ack"), b"barrier")  # allowed: proves gw1's connection carried on
    controller.subscribe(topic(deployed, "gw1", "ack"))
    controller.publish(topic(deployed, "gw2", "cmd"), b"real command")
    assert gw2.next_message().payload == b"real command"
    assert gw2.messages.empty()


def test_controller_reads_state_and_acks_of_every_gateway(deployed: Deployed, connect: Connect) -> None:
    controller, gw1, gw2 = connect("kuat-controller"), connect("gw1"), connect("gw2")
    controller.subscribe(f"{v1.TOPIC_ROOT}/{deployed.scratch.site}/gw/+/ack")
    gw1.publish(topic(deployed, "gw1", "ack"), b"ack 1")
    first = controller.next_message()
    gw2.publish(topic(deployed, "gw2", "ack"), b"ack 2")
    second = controller.next_message()
    assert {(first.topic, first.payload), (second.topic, second.payload)} == {
        (topic(deployed, "gw1", "ack"), b"ack 1"),
        (topic(deployed, "gw2", "ack"), b"ack 2"),
    }


def test_password_file_entries_verify_and_are_salted(deployed: Deployed) -> None:
    from tests.deploy.passwd_module import load_passwd_module

    module = load_passwd_module()
    entries = module.parse_passwd((deployed.scratch.root("ctl") / "etc/mosquitto/kuat.passwd").read_text())
    assert set(entries) == set(deployed.scratch.passwords)
    for user, password in deployed.scratch.passwords.items():
        assert module.verify_password(password, entries[user])
        assert not module.verify_password(password + "x", entries[user])
    assert len({e.split("$")[3] for e in entries.values()}) == len(entries), "salts repeat"


def test_ca_file_is_the_one_the_agents_get(deployed: Deployed, rendered_broker: RenderedBroker) -> None:
    agent_ca = deployed.scratch.root("gw1") / "etc/kuat/mqtt-ca.crt"
    assert Path(agent_ca).read_text() == rendered_broker.ca.read_text()
