"""MQTT ingest: a paho-mqtt 2 subscriber on every gateway's telemetry, state and ack topics.

paho's network thread only queues (topic, payload, receive time); one worker thread decodes with the wire schema
(`model_validate_json`) and calls the services. The queue is bounded: when the worker falls behind, paho's thread
blocks, so the broker holds the backlog instead of our memory. Bad messages are logged and counted and never stop
ingest; a message with a schema this controller does not know is rejected with a log line saying so.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ValidationError

from controller.metrics import IngestMetrics
from controller.services.commands import CommandService
from controller.services.gateways import GatewayService
from controller.services.telemetry import TelemetryService
from controller.settings import BrokerSettings
from kuat.wire import v1

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

KINDS = ("telemetry", "state", "ack")
LOG_FIRST = 20  # rejected messages logged one by one, then every LOG_EVERY-th per reason
LOG_EVERY = 1000


class Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def subscriptions(sites: list[str]) -> list[str]:
    return [f"{v1.TOPIC_ROOT}/{site}/gw/+/{kind}" for site in (sites or ["+"]) for kind in KINDS]


def parse_topic(topic: str) -> tuple[str, str, str]:
    """(site, gateway, kind) of a gateway topic, or Rejected."""
    parts = topic.split("/")
    if len(parts) != 6 or f"{parts[0]}/{parts[1]}" != v1.TOPIC_ROOT or parts[3] != "gw" or parts[5] not in KINDS:
        raise Rejected("topic", f"not a gateway topic: {topic}")
    return parts[2], parts[4], parts[5]


def decode(model: type[M], payload: bytes) -> M:
    """Validate a wire message; a wrong `schema` becomes Rejected('schema_version'), anything else 'invalid'."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        for err in exc.errors():
            if err["loc"] == ("schema",):
                raise Rejected("schema_version", f"unknown schema {err.get('input')!r}, expected "
                               f"{model.model_fields['schema_'].default!r}") from exc  # fmt: skip
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(message)"
        reason = "bad_json" if first["type"] == "json_invalid" else "invalid"
        raise Rejected(reason, f"{where}: {first['msg']} ({exc.error_count()} error(s))") from exc


class Ingest:
    """Owns the MQTT client and the worker thread; `publish` is what the command service sends with."""

    def __init__(
        self,
        broker: BrokerSettings,
        sites: list[str],
        telemetry: TelemetryService,
        gateways: GatewayService,
        commands: CommandService,
        metrics: IngestMetrics,
        queue_max: int = 1000,
    ) -> None:
        self.broker = broker
        self.sites = sites
        self.telemetry = telemetry
        self.gateways = gateways
        self.commands = commands
        self.metrics = metrics
        self.queue: queue.Queue[tuple[str, bytes, float]] = queue.Queue(maxsize=queue_max)
        metrics.queue_depth = self.queue.qsize
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._rejections_logged: dict[str, int] = {}
        self.client = self._make_client()

    # ------------------------------------------------------------ MQTT side

    def _make_client(self) -> mqtt.Client:
        b = self.broker
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=b.client_id, clean_session=not b.persistent_session,
            protocol=mqtt.MQTTv311,
        )  # fmt: skip
        if b.username:
            client.username_pw_set(b.username, b.password)
        if b.tls:
            client.tls_set(
                ca_certs=str(b.ca_file) if b.ca_file else None,
                certfile=str(b.cert_file) if b.cert_file else None,
                keyfile=str(b.key_file) if b.key_file else None,
            )
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(1000)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.broker.host, self.broker.port, reason)
            return
        topics = subscriptions(self.sites)
        client.subscribe([(t, 1) for t in topics])
        self.connected.set()
        log.info("connected to broker %s:%d, subscribed to %s", self.broker.host, self.broker.port, ", ".join(topics))

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("lost the broker connection (%s); paho reconnects", reason)

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        self.queue.put((msg.topic, bytes(msg.payload), time.time()))

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")

    # ------------------------------------------------------------ worker side

    def handle(self, topic: str, payload: bytes, received: float) -> None:
        """Decode one message and hand it to its service; never raises."""
        try:
            site, gateway, kind = parse_topic(topic)
            self._dispatch(site, gateway, kind, payload, received)
            self.metrics.messages[kind] += 1
        except Rejected as exc:
            self._reject(exc.reason, topic, str(exc))
        except Exception as exc:  # a bug in a handler must not stop ingest
            self.metrics.rejected["handler_error"] += 1
            log.exception("handling %s failed: %s", topic, exc)

    def _dispatch(self, site: str, gateway: str, kind: str, payload: bytes, received: float) -> None:
        if kind == "telemetry":
            batch = decode(v1.TelemetryBatch, payload)
            _same_origin(site, gateway, batch.site, batch.gateway)
            self.telemetry.ingest(batch, received)
        elif kind == "state":
            state = decode(v1.GatewayState, payload)
            _same_origin(site, gateway, site, state.gateway)
            self.gateways.on_state(site, gateway, state, received)
        else:
            ack = decode(v1.Ack, payload)
            _same_origin(site, gateway, site, ack.gateway)
            self.commands.on_ack(site, gateway, ack)

    def _reject(self, reason: str, topic: str, detail: str) -> None:
        self.metrics.rejected[reason] += 1
        n = self._rejections_logged[reason] = self._rejections_logged.get(reason, 0) + 1
        if n <= LOG_FIRST or n % LOG_EVERY == 0:
            log.warning("rejected message on %s (%s, #%d): %s", topic, reason, n, detail)

    def _work(self) -> None:
        while True:
            try:
                topic, payload, received = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            self.handle(topic, payload, received)

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="kuat-ingest", daemon=True)
        self._worker.start()
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self.client.loop_start()
        log.info("ingest started (broker %s:%d)", self.broker.host, self.broker.port)

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Disconnect, then let the worker finish what was already received (bounded)."""
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()
        if self._worker is not None:
            self._worker.join(timeout=drain_timeout)
            if self._worker.is_alive():
                log.warning("ingest worker busy after %.0f s; %d messages left", drain_timeout, self.queue.qsize())
        log.info("ingest stopped")


def _same_origin(topic_site: str, topic_gw: str, site: str, gateway: str) -> None:
    if (site, gateway) != (topic_site, topic_gw):
        raise Rejected("topic_mismatch", f"message says {site}/{gateway}, topic says {topic_site}/{topic_gw}")


Handler = Callable[[str, bytes, float], None]
