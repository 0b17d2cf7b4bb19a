"""`/healthz` and Prometheus-style `/metrics` for the gateway agent, on a small asyncio HTTP server.

Plain asyncio (no web framework): the agent is a small daemon on a small box. Bound to 127.0.0.1 by default;
node exporters or a local Prometheus agent scrape it there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class AgentHealth:
    """What the endpoints report; filled by the agent's service from its parts at request time."""

    broker_connected: bool
    cycles: int
    cycles_skipped: int
    last_cycle_s: float | None
    last_cycle_age_s: float | None
    miners_total: int
    miners_up: int
    pdus_total: int
    pdus_up: int
    buffer_rows: int
    buffer_dropped: int
    batches_published: int
    batches_replayed: int
    failsafe_active: bool
    lease_seconds_left: float | None
    interval_s: float
    buffer_disk_full: int = 0  # times the disk under the buffer was found full
    cycles_unbuffered: int = 0  # cycles whose telemetry could not be stored at all (no room even after dropping)

    @property
    def healthy(self) -> bool:
        """Polling is alive: a cycle finished within three intervals (or none was due yet)."""
        return self.last_cycle_age_s is None or self.last_cycle_age_s < 3 * self.interval_s + 30


def render_metrics(h: AgentHealth) -> str:
    """Prometheus text exposition format."""
    rows: list[tuple[str, str, str, float | None]] = [
        ("kuat_agent_broker_connected", "gauge", "1 while connected to the MQTT broker", float(h.broker_connected)),
        ("kuat_agent_cycles_total", "counter", "poll cycles completed", h.cycles),
        ("kuat_agent_cycles_skipped_total", "counter", "poll cycles skipped because one overran", h.cycles_skipped),
        ("kuat_agent_cycle_seconds", "gauge", "duration of the last poll cycle", h.last_cycle_s),
        ("kuat_agent_cycle_age_seconds", "gauge", "seconds since the last poll cycle ended", h.last_cycle_age_s),
        ("kuat_agent_buffer_rows", "gauge", "telemetry batches waiting in the store-and-forward buffer", h.buffer_rows),
        ("kuat_agent_buffer_dropped_total", "counter", "batches dropped because the buffer was full",
         h.buffer_dropped),
        ("kuat_agent_buffer_disk_full_total", "counter", "times the disk under the buffer was full (oldest dropped)",
         h.buffer_disk_full),
        ("kuat_agent_cycles_unbuffered_total", "counter", "poll cycles whose telemetry could not be buffered (lost)",
         h.cycles_unbuffered),
        ("kuat_agent_batches_published_total", "counter", "batches acknowledged by the broker", h.batches_published),
        ("kuat_agent_batches_replayed_total", "counter", "of which replayed as historical", h.batches_replayed),
        ("kuat_agent_failsafe_active", "gauge", "1 while the lease failsafe holds the safe state",
         float(h.failsafe_active)),
        ("kuat_agent_lease_seconds_left", "gauge", "seconds until the setpoint lease expires", h.lease_seconds_left),
    ]
    out: list[str] = []
    for name, kind, help_text, value in rows:
        if value is None:
            continue
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]
    out += ["# HELP kuat_agent_devices devices by kind and availability", "# TYPE kuat_agent_devices gauge"]
    for kind, total, up in (("miner", h.miners_total, h.miners_up), ("pdu", h.pdus_total, h.pdus_up)):
        out.append(f'kuat_agent_devices{{kind="{kind}",available="true"}} {up}')
        out.append(f'kuat_agent_devices{{kind="{kind}",available="false"}} {total - up}')
    return "\n".join(out) + "\n"


def render_health(h: AgentHealth) -> tuple[int, str]:
    body = {
        "status": "ok" if h.healthy else "stalled",
        "broker_connected": h.broker_connected,
        "cycles": h.cycles,
        "last_cycle_age_s": None if h.last_cycle_age_s is None else round(h.last_cycle_age_s, 1),
        "miners_up": h.miners_up,
        "miners_total": h.miners_total,
        "pdus_up": h.pdus_up,
        "pdus_total": h.pdus_total,
        "buffer_rows": h.buffer_rows,
        "buffer_dropped": h.buffer_dropped,
        "cycles_unbuffered": h.cycles_unbuffered,
        "failsafe_active": h.failsafe_active,
    }
    return (200 if h.healthy else 503), json.dumps(body)


class MetricsServer:
    def __init__(self, host: str, port: int, snapshot: Callable[[], AgentHealth]) -> None:
        self.host, self.port, self.snapshot = host, port, snapshot
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            status, ctype, body = self._route(parts[0] if parts else "", path)
            head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode() + body.encode())
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()

    def _route(self, method: str, path: str) -> tuple[int, str, str]:
        if method != "GET":
            return 405, "text/plain", "GET only\n"
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", render_metrics(self.snapshot())
        if path == "/healthz":
            status, body = render_health(self.snapshot())
            return status, "application/json", body
        return 404, "text/plain", "try /healthz or /metrics\n"


def age(monotonic_end: float | None) -> float | None:
    return None if monotonic_end is None else time.monotonic() - monotonic_end
