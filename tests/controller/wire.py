"""Real wire-schema messages for the controller's tests, and a paho publisher to send them through mosquitto."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt

from kuat.wire import v1

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def miner(i: int, power_w: float | None = 3000.0, **over: object) -> v1.MinerSample:
    mac = f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"
    fields: dict[str, object] = dict(
        device_id=mac, ip=f"127.60.{i // 250}.{i % 250 + 1}", available=True, state=v1.MinerState.MINING,
        make="Antminer", model="S19j Pro", firmware="bmminer 1.0.0", serial=f"SN{i:06d}", mac=mac,
        hashrate_ths=100.0, nominal_ths=104.0, power_w=power_w, power_source=v1.PowerSource.REPORTED, temp_c=65.0,
        fans_rpm=[4800, 4900], boards=[v1.Board(index=b, hashrate_ths=33.3, temp_c=64.0) for b in range(3)],
        pools=[v1.Pool(url="stratum+tcp://pool.kz-accredited.example:3333", user="site.w1", active=True)],
    )
    fields.update(over)
    return v1.MinerSample.model_validate(fields)


def pdu(i: int, power_w: float = 6000.0) -> v1.PduSample:
    return v1.PduSample(
        device_id=f"pdu-127.61.0.{i}", ip=f"127.61.0.{i}", available=True, family="apc_rpdu2", model="AP8959",
        power_w=power_w, energy_kwh=1234.5,
        outlets=[v1.OutletSample(index=o, name=f"outlet {o}", state=v1.OutletState.ON, power_w=3000.0,
                                 current_a=13.0) for o in (1, 2)],
    )


def batch(
    seq: int,
    ts: datetime,
    miners: list[v1.MinerSample],
    pdus: list[v1.PduSample] | None = None,
    site: str = "kz1",
    gateway: str = "gw1",
    historical: bool = False,
) -> v1.TelemetryBatch:
    return v1.TelemetryBatch(site=site, gateway=gateway, seq=seq, ts=ts, miners=miners, pdus=pdus or [],
                             historical=historical, cycle_s=1.5)


def every(seconds: float, n: int, start: datetime = T0) -> Iterator[datetime]:
    for k in range(n):
        yield start + timedelta(seconds=seconds * k)


def random_site() -> str:
    return f"site{random.randint(1000, 9999)}"


class Publisher:
    """A plain paho client that publishes QoS 1 and waits for the broker's PUBACK (bounded)."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{random.random()}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"broker did not take {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Agent:
    """Stands in for the agent's command handling: subscribes to a gateway's cmd topic and acks every command."""

    def __init__(self, port: int, site: str, gateway: str, status: v1.AckStatus = v1.AckStatus.APPLIED) -> None:
        self.site, self.gateway, self.status = site, gateway, status
        self.received: list[v1.Command] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-agent-{random.random()}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(v1.topic(site, gateway, "cmd"), qos=1)
        self.client.loop_start()
        assert self.subscribed.wait(10), "fake agent could not subscribe"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        cmd = v1.Command.model_validate_json(msg.payload)
        self.received.append(cmd)
        ack = v1.Ack(command_id=cmd.id, gateway=self.gateway, status=self.status,
                     reason=None if self.status == v1.AckStatus.APPLIED else "not on this firmware")
        self.client.publish(v1.topic(self.site, self.gateway, "ack"), v1.dumps(ack), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def publisher(port: int) -> Iterator[Publisher]:
    p = Publisher(port)
    try:
        yield p
    finally:
        p.close()
