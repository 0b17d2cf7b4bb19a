"""The agent's /healthz and /metrics over a real mosquitto with in-test devices: figures follow what happens."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from agent.config import MetricsConfig
from agent.metrics import AgentHealth, render_health
from tests.agent.mqtt_support import agent_config, running_agent, wait_until
from tests.agent.runtime_fakes import fake_site
from tests.support.servers import Mosquitto, free_port

pytestmark = pytest.mark.integration


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_health_and_metrics_report_the_running_agent(broker: Mosquitto, tmp_path: Path) -> None:
    site, devices = fake_site(3)
    port = free_port()
    cfg = agent_config(tmp_path, broker.port, devices, metrics=MetricsConfig(port=port))
    async with running_agent(cfg, site) as agent, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        await wait_until(lambda: agent.coordinator.cycles >= 2 and agent.publisher.published >= 2, 10, "two cycles")
        health = (await http.get("/healthz")).json()
        assert health["status"] == "ok" and health["broker_connected"] is True
        assert (health["miners_up"], health["miners_total"], health["pdus_total"]) == (3, 3, 1)
        text = (await http.get("/metrics")).text
        assert _metric(text, "kuat_agent_broker_connected") == 1
        assert _metric(text, "kuat_agent_cycles_total") >= 2
        assert 'kuat_agent_devices{kind="miner",available="true"} 3' in text
        broker.stop()  # the broker goes away: the agent says so and buffers
        await wait_until(lambda: not agent.publisher.connected, 10, "the agent to notice the broker is gone")
        await wait_until(lambda: agent.buffer.count() >= 1, 10, "a buffered batch")
        text = (await http.get("/metrics")).text
        assert _metric(text, "kuat_agent_broker_connected") == 0
        assert _metric(text, "kuat_agent_buffer_rows") >= 1
        assert (await http.get("/nope")).status_code == 404
        broker.start()


def test_health_says_stalled_when_polling_stops() -> None:
    base = dict(broker_connected=True, cycles=5, cycles_skipped=0, last_cycle_s=1.0, miners_total=1, miners_up=1,
                pdus_total=0, pdus_up=0, buffer_rows=0, buffer_dropped=0, batches_published=5, batches_replayed=0,
                failsafe_active=False, lease_seconds_left=None, interval_s=10.0)
    assert render_health(AgentHealth(last_cycle_age_s=12.0, **base))[0] == 200  # type: ignore[arg-type]
    status, body = render_health(AgentHealth(last_cycle_age_s=300.0, **base))  # type: ignore[arg-type]
    assert status == 503 and '"stalled"' in body
