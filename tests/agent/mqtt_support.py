"""Test-side MQTT: a 'controller' client that records what a gateway publishes and sends it commands, and a
helper to run an Agent in the test's event loop. Everything bounded; loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import AgentConfig, config_from_dict
from agent.coordinator import DriverOpener
from agent.service import Agent
from kuat.wire import v1


class Controller:
    """Subscribes to one gateway's telemetry, state and acks; publishes commands."""

    def __init__(self, port: int, site: str, gateway: str, client_id: str | None = None, persistent: bool = False):
        self.site, self.gateway = site, gateway
        self.batches: list[v1.TelemetryBatch] = []
        self.states: list[v1.GatewayState] = []
        self.acks: list[v1.Ack] = []
        self._lock = threading.Lock()
        self._pending_subs: set[int] = set()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"test-ctl-{id(self)}",
                                  clean_session=not persistent)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        # Subscribed before the caller starts an agent: a replay published before the broker knew this subscriber
        # would be acknowledged to the agent and reach nobody (seen under load: "gap in seq").
        if not self.subscribed.wait(15):
            raise TimeoutError(f"test controller not subscribed to {site}/{gateway} within 15 s")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._lock:
            for kind in ("telemetry", "state", "ack"):
                _, mid = client.subscribe(v1.topic(self.site, self.gateway, kind), qos=1)  # type: ignore[arg-type]
                self._pending_subs.add(mid)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, props: Any) -> None:
        with self._lock:
            self._pending_subs.discard(mid)
            if not self._pending_subs:
                self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[1]
        with self._lock:
            if kind == "telemetry":
                self.batches.append(v1.TelemetryBatch.model_validate_json(msg.payload))
            elif kind == "state":
                self.states.append(v1.GatewayState.model_validate_json(msg.payload))
            elif kind == "ack":
                self.acks.append(v1.Ack.model_validate_json(msg.payload))

    def send(self, cmd: v1.Command | bytes) -> None:
        payload = cmd if isinstance(cmd, bytes) else v1.dumps(cmd)
        self.client.publish(v1.topic(self.site, self.gateway, "cmd"), payload, qos=1).wait_for_publish(5)

    async def ack_for(self, command_id: str, timeout_s: float = 10.0, nth: int = 1) -> v1.Ack:
        await wait_until(lambda: sum(a.command_id == command_id for a in self.acks) >= nth, timeout_s,
                         f"ack #{nth} for {command_id}")
        return [a for a in self.acks if a.command_id == command_id][nth - 1]

    def latest(self, live_only: bool = True) -> v1.TelemetryBatch | None:
        with self._lock:
            found = [b for b in self.batches if not (live_only and b.historical)]
        return found[-1] if found else None

    async def batch_after(self, t: float, pred: Callable[[v1.TelemetryBatch], bool] | None = None,
                          timeout_s: float = 10.0) -> v1.TelemetryBatch:
        """The first live batch whose cycle ended after wall time `t` (and that satisfies `pred`)."""
        def match() -> v1.TelemetryBatch | None:
            with self._lock:
                for b in self.batches:
                    if not b.historical and b.ts.timestamp() > t and (pred is None or pred(b)):
                        return b
            return None

        await wait_until(lambda: match() is not None, timeout_s, "a matching telemetry batch")
        found = match()
        assert found is not None
        return found

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def wait_until(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout_s}s")
        await asyncio.sleep(0.05)


def agent_config(tmp_path: Path, port: int, devices: dict[str, object], **extra: Any) -> AgentConfig:
    data: dict[str, Any] = {
        "site": "t1",
        "gateway": "gw1",
        "broker": {"host": "127.0.0.1", "port": port},
        "poll": {"interval_s": 0.2, "device_timeout_s": 1.0},
        "buffer": {"path": str(tmp_path / "agent-buffer.sqlite")},
        "devices": devices,
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return config_from_dict(data)


@contextlib.asynccontextmanager
async def running_agent(cfg: AgentConfig, opener: DriverOpener | None = None) -> AsyncIterator[Agent]:
    agent = Agent(cfg, opener)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
