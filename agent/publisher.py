"""MQTT side of the agent (paho-mqtt 2, its network thread via loop_start): telemetry out through the on-disk
buffer, retained gateway state with a last will, commands in, acks out.

Store-and-forward: `submit` writes the batch to the buffer first; `pump` hands buffered batches to paho in seq
order (a bounded window in flight) while connected; a batch leaves the buffer only when its PUBACK arrives. Batches
older than the newest one are sent with `historical: true`. paho itself re-sends QoS 1 messages that were in flight
when a connection dropped, so after a reconnect nothing is lost (a batch may arrive twice: receivers de-duplicate by
`seq`).

Threading: paho calls back on its own thread; everything that touches our state is handed to the asyncio loop with
`call_soon_threadsafe`, so the bookkeeping below is single-threaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent import clock
from agent.buffer import Buffer
from agent.config import AgentConfig
from kuat import __version__
from kuat.wire import v1

log = logging.getLogger(__name__)

WINDOW = 8  # telemetry batches handed to paho and not yet acknowledged
RETRY_JITTER_S = 3  # the first reconnect attempt after a drop waits 1..this many seconds
QOS = 1


class Publisher:
    def __init__(
        self,
        cfg: AgentConfig,
        buffer: Buffer,
        on_command: Callable[[bytes], None],
        devices: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.buffer = buffer
        self.on_command = on_command  # called on the asyncio loop with the raw command payload
        self.devices = devices
        self.topic_telemetry = v1.topic(cfg.site, cfg.gateway, "telemetry")
        self.topic_state = v1.topic(cfg.site, cfg.gateway, "state")
        self.topic_cmd = v1.topic(cfg.site, cfg.gateway, "cmd")
        self.topic_ack = v1.topic(cfg.site, cfg.gateway, "ack")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: dict[int, int] = {}  # paho mid -> telemetry seq
        self._cursor = 0  # highest seq handed to paho
        # seq of the newest batch: anything older goes out as historical (all that a previous run left behind, too)
        self._live_seq = buffer.last_seq() + 1
        self._connected = False
        self._stopping = False
        self._refused: str | None = None
        b = cfg.broker
        self.endpoints = [(b.host, b.port), *((f.host, f.port) for f in b.fallbacks)]  # in order of preference
        self.endpoint = 0  # index of the broker tried now
        self._failed_attempts = 0
        self.switches = 0  # times the agent moved on to the next broker
        self.published = 0  # batches acknowledged by the broker
        self.replayed = 0  # of which historical
        self.client = self._make_client()

    # ------------------------------------------------------------ set-up
    def _make_client(self) -> mqtt.Client:
        b = self.cfg.broker
        protocol = mqtt.MQTTv5 if b.protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.cfg.client_id(), protocol=protocol)
        client.will_set(self.topic_state, self._state(online=False), qos=QOS, retain=True)
        if b.username is not None:
            client.username_pw_set(b.username, b.password)
        if b.tls is not None:
            client.tls_set(
                ca_certs=str(b.tls.ca) if b.tls.ca else None,
                certfile=str(b.tls.cert) if b.tls.cert else None,
                keyfile=str(b.tls.key) if b.tls.key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(b.tls.insecure)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.max_inflight_messages_set(WINDOW + 16)  # room for acks and state beside the telemetry window
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _state(self, online: bool) -> bytes:
        return v1.dumps(
            v1.GatewayState(gateway=self.cfg.gateway, online=online, ts=clock.now(), agent_version=__version__,
                            devices=self.devices)
        )

    def start(self) -> None:
        """Connect in the background; paho keeps reconnecting (1..10 s back-off) until `stop`."""
        self._loop = asyncio.get_running_loop()
        b = self.cfg.broker
        log.info("MQTT: connecting to %s:%d (MQTT %s%s) as %s", b.host, b.port, b.protocol,
                 ", TLS" if b.tls else "", self.cfg.client_id())
        self.client.connect_async(b.host, b.port, keepalive=b.keepalive_s)
        self.client.loop_start()

    async def stop(self, timeout_s: float = 3.0) -> None:
        """Say offline (retained) and disconnect cleanly; the will is not sent on a clean disconnect."""
        self._stopping = True
        if self._connected:
            info = self.client.publish(self.topic_state, self._state(online=False), qos=QOS, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # not queued / connection gone meanwhile
                await asyncio.to_thread(info.wait_for_publish, timeout_s)
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)
        log.info("MQTT: disconnected (%d batch(es) still buffered)", self.buffer.count())

    @property
    def connected(self) -> bool:
        return self._connected

    # ------------------------------------------------------------ paho callbacks (network thread)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if reason.is_failure:
            text = str(reason)
            log.log(logging.ERROR if text != self._refused else logging.DEBUG,
                    "MQTT: broker refused the connection: %s (retrying)", text)
            self._refused = text  # said once until the reason changes
            return
        self._refused = None
        self._failed_attempts = 0
        client.publish(self.topic_state, self._state(online=True), qos=QOS, retain=True)
        client.subscribe(self.topic_cmd, qos=QOS)
        self._call(self._connected_now)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        # a broker restart drops every gateway at once: their first retries are spread over 1..RETRY_JITTER_S s
        client.reconnect_delay_set(min_delay=random.randint(1, RETRY_JITTER_S), max_delay=10)
        self._call(self._disconnected_now, str(reason))

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        """A connection attempt failed (network thread, connection closed): after `fallback_after` in a row, the
        next broker of the list."""
        self._failed_attempts += 1
        if len(self.endpoints) < 2 or self._failed_attempts < self.cfg.broker.fallback_after:
            return
        self._failed_attempts = 0
        before = self.endpoints[self.endpoint]
        self.endpoint = (self.endpoint + 1) % len(self.endpoints)
        host, port = self.endpoints[self.endpoint]
        client.connect_async(host, port, keepalive=self.cfg.broker.keepalive_s)  # paho's next attempt goes there
        self.switches += 1
        log.warning("MQTT: %s:%d unreachable after %d attempts; trying %s:%d", *before,
                    self.cfg.broker.fallback_after, host, port)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        self._call(self._acked, mid)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.topic_cmd:
            self._call(self.on_command, bytes(msg.payload))

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    # ------------------------------------------------------------ bookkeeping (asyncio loop)
    def _connected_now(self) -> None:
        backlog = self.buffer.count()
        self._connected = True
        log.info("MQTT: connected; %d buffered batch(es) to send", backlog)
        self.pump()

    def _disconnected_now(self, reason: str) -> None:
        if self._connected and not self._stopping:
            log.warning("MQTT: connection lost (%s); telemetry is buffered on disk until it is back", reason)
        self._connected = False

    def _acked(self, mid: int) -> None:
        seq = self._inflight.pop(mid, None)
        if seq is None:  # a state or command-ack message
            return
        self.buffer.delete(seq)
        self.published += 1
        self.pump()

    def submit(self, seq: int, payload: bytes) -> None:
        """Store a telemetry batch (TelemetryBatch JSON with this seq) and send it when the broker is there."""
        self.buffer.append(seq, payload)
        self._live_seq = max(self._live_seq, seq)
        self.pump()

    def pump(self) -> None:
        """Hand buffered batches to paho in seq order while connected, keeping at most WINDOW in flight."""
        while self._connected and len(self._inflight) < WINDOW:
            rows = self.buffer.pending(limit=WINDOW - len(self._inflight), after=self._cursor)
            if not rows:
                return
            for row in rows:
                historical = row.seq < self._live_seq
                payload = mark_historical(row.payload) if historical else row.payload
                info = self.client.publish(self.topic_telemetry, payload, qos=QOS)
                self._cursor = self.buffer.handed_upto = row.seq
                self.replayed += historical
                # the PUBACK callback reaches us through call_soon_threadsafe, so after this line has run
                self._inflight[info.mid] = row.seq

    def publish_ack(self, ack: v1.Ack) -> None:
        self.client.publish(self.topic_ack, v1.dumps(ack), qos=QOS)


def mark_historical(payload: bytes) -> bytes:
    """Set the batch's top-level `historical` flag (the first such key in field order: no full re-encode)."""
    marked = payload.replace(b'"historical":false', b'"historical":true', 1)
    if marked is payload or marked == payload:
        data = json.loads(payload)
        data["historical"] = True
        marked = json.dumps(data, separators=(",", ":")).encode()
    return marked
