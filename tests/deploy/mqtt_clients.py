"""A paho-mqtt client over TLS for the deployment tests (the broker the controller role configured)."""

from __future__ import annotations

import queue
import ssl
import threading
import uuid
from pathlib import Path
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class BrokerEndpoint(Protocol):
    @property
    def ca(self) -> Path: ...

    @property
    def port(self) -> int: ...


WAIT_S = 15.0  # upper bound for a message that must arrive (the test fails, it does not pass, on expiry)


class TlsClient:
    """A paho client over TLS that records CONNACK and every message it receives."""

    def __init__(self, broker: BrokerEndpoint, user: str | None, password: str | None, tls: bool = True) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{user}-{uuid.uuid4().hex[:6]}")
        if user is not None:
            self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set(ca_certs=str(broker.ca), cert_reqs=ssl.CERT_REQUIRED)
        self.connack: queue.Queue[mqtt.ReasonCode | str] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.subscribed = threading.Event()
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        self.client.on_disconnect = lambda _c, _u, _f, rc, _p: self.connack.put(f"disconnected: {rc}")
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_subscribe = lambda _c, _u, _m, _rc, _p: self.subscribed.set()
        self.port = broker.port

    def connect(self) -> mqtt.ReasonCode | str:
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            return f"refused: {exc}"
        self.client.loop_start()
        try:
            return self.connack.get(timeout=WAIT_S)
        except queue.Empty:
            return "no answer"

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(WAIT_S), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=WAIT_S)

    def next_message(self) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=WAIT_S)
        except queue.Empty:
            raise AssertionError("an expected message did not arrive") from None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


