"""The live grid signal: paho-mqtt 2 subscribers on kuat/v1/{site}/grid/signal (kuat.wire.v1.GridSignal), one per
broker of the contract (`quota.grid_brokers`, preference order; by default the controller's own broker).

Each has its own connection (client id `<controller id>-grid` for the first, `-grid2`... for the others), so a slow
telemetry backlog never delays a grid target. Every message is handed to QuotaService.on_grid_signal with the
broker's name and MQTT's retain flag: it is judged by its own timestamp (quota.grid), recorded and counted. Staleness
is the engine's business: no fresh message for the contract's `stale_after_s` and the limit becomes the contract's
safe level, whether or not the brokers are up.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from controller.settings import BrokerSettings
from kuat.wire import v1

if TYPE_CHECKING:
    from controller.quota.service import QuotaService

log = logging.getLogger(__name__)


def site_of(topic: str) -> str | None:
    """`kuat/v1/{site}/grid/signal` -> site; anything else -> None."""
    parts = topic.split("/")
    if len(parts) == 5 and f"{parts[0]}/{parts[1]}" == v1.TOPIC_ROOT and parts[3:] == ["grid", "signal"]:
        return parts[2]
    return None


def parse(payload: bytes) -> tuple[v1.GridSignal | None, str | None]:
    try:
        return v1.GridSignal.model_validate_json(payload), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(message)"
        return None, f"{where}: {first['msg']}"


def broker_names(n: int) -> list[str]:
    """primary, secondary, then broker3, broker4..."""
    return [("primary", "secondary")[i] if i < 2 else f"broker{i + 1}" for i in range(n)]


class _Subscription:
    """One broker's connection."""

    def __init__(self, broker: BrokerSettings, name: str, client_id: str, listener: GridSignalListener) -> None:
        self.broker = broker
        self.name = name
        self.listener = listener
        self.connected = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                             protocol=mqtt.MQTTv311)  # fmt: skip
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set(ca_certs=str(broker.ca_file) if broker.ca_file else None)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("grid signal (%s): broker refused the connection: %s", self.name, reason)
            return
        topics = self.listener.topics()
        client.subscribe([(t, 1) for t in topics])
        self.connected.set()
        log.info("grid signal (%s %s:%d): subscribed to %s", self.name, self.broker.host, self.broker.port,
                 ", ".join(topics))

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connected.clear()
        if self.listener.stopping:
            return
        log.warning("grid signal (%s): lost the broker (%s); a silent signal turns stale and the other broker or "
                    "the safe level applies", self.name, reason)

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        self.listener.deliver(self.name, msg.topic, bytes(msg.payload), bool(msg.retain))

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class GridSignalListener:
    def __init__(self, brokers: BrokerSettings | list[BrokerSettings], sites: list[str], quota: QuotaService) -> None:
        chosen = brokers if isinstance(brokers, list) else [brokers]
        if not chosen:
            raise ValueError("the grid signal needs at least one broker")
        self.sites = sites
        self.quota = quota
        self.received = 0
        self.stopping = False
        base = chosen[0].client_id
        self.subscriptions = [_Subscription(b, name, f"{base}-grid" if i == 0 else f"{base}-grid{i + 1}", self)
                              for i, (b, name) in enumerate(zip(chosen, broker_names(len(chosen)), strict=True))]
        self.connected = self.subscriptions[0].connected  # the primary's

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.subscriptions]

    def topics(self) -> list[str]:
        return [v1.grid_signal_topic(site) for site in (self.sites or ["+"])]

    def deliver(self, broker: str, topic: str, payload: bytes, retained: bool) -> None:
        site = site_of(topic)
        if site is None:
            log.warning("grid signal (%s): message on unexpected topic %s ignored", broker, topic)
            return
        self.received += 1
        signal, error = parse(payload)
        try:
            self.quota.on_grid_signal(site, signal, error, actor=f"mqtt:{topic}", broker=broker, retained=retained)
        except Exception:
            log.exception("grid signal for %s could not be recorded", site)

    def start(self) -> None:
        for sub in self.subscriptions:
            sub.start()

    def wait_connected(self, timeout: float) -> bool:
        """The primary connected within `timeout` (the others connect on their own)."""
        return self.connected.wait(timeout)

    def stop(self) -> None:
        self.stopping = True
        for sub in self.subscriptions:
            sub.stop()
