"""The live grid signal: a paho-mqtt 2 subscriber on kuat/v1/{site}/grid/signal (kuat.wire.v1.GridSignal).

Its own connection (client id `<controller id>-grid`), so a slow telemetry backlog never delays a grid target.
Every message is recorded (QuotaService.on_grid_signal), a bad one with its error; a valid one becomes the site's
reading, timed at receipt by the controller's clock. Staleness is the engine's business: no message for the
contract's `stale_after_s` and the limit becomes the contract's safe level, whether or not the broker is up.
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


class GridSignalListener:
    def __init__(self, broker: BrokerSettings, sites: list[str], quota: QuotaService) -> None:
        self.broker = broker
        self.sites = sites
        self.quota = quota
        self.connected = threading.Event()
        self.received = 0
        self._stopping = False
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{broker.client_id}-grid",
                             clean_session=True, protocol=mqtt.MQTTv311)  # fmt: skip
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set(ca_certs=str(broker.ca_file) if broker.ca_file else None)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    def topics(self) -> list[str]:
        return [v1.grid_signal_topic(site) for site in (self.sites or ["+"])]

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("grid signal: broker refused the connection: %s", reason)
            return
        client.subscribe([(t, 1) for t in self.topics()])
        self.connected.set()
        log.info("grid signal: subscribed to %s", ", ".join(self.topics()))

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connected.clear()
        if self._stopping:
            return
        log.warning("grid signal: lost the broker (%s); a silent signal turns stale and the safe level applies",
                    reason)

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        site = site_of(msg.topic)
        if site is None:
            log.warning("grid signal: message on unexpected topic %s ignored", msg.topic)
            return
        self.received += 1
        signal, error = parse(bytes(msg.payload))
        try:
            self.quota.on_grid_signal(site, signal, error, actor=f"mqtt:{msg.topic}")
        except Exception:
            log.exception("grid signal for %s could not be recorded", site)

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
