"""The simulator process: a site's miners and PDUs on loopback, the physics ticker and the control API, in one loop.

Everything runs in one asyncio event loop (1,000 miners and 50 PDUs fit on two cores): miner listeners from
`sim.miners`, SNMP agents from `sim.pdus.start_pdu_agents` (when that package is present), the energy ticker of
`sim.runtime.Site`, and the JSON control API of `sim.control`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import resource
from dataclasses import dataclass
from typing import Any, Protocol

from kuat import clock as kuat_clock
from sim.clock import SimClock
from sim.control import ControlApi
from sim.miners import MinerServers, ServeOptions
from sim.runtime import Site
from sim.site import SiteFile

log = logging.getLogger(__name__)

SNMP_PORT = 161
FDS_PER_MINER = 4  # two listeners plus connections in flight


class Stoppable(Protocol):
    async def stop(self) -> None: ...


@dataclass
class SimConfig:
    port_offset: int = 0
    speed: float | None = None  # None: the shared kuat clock's speed (KUAT_CLOCK), else real time
    boot_s: float | None = None
    wake_s: float | None = None
    ramp_s: float | None = None
    sleep_s: float | None = None
    slow_s: float = 5.0
    control_port: int | None = 8028  # None: no control API
    serve_pdus: bool = True

    def physics(self) -> dict[str, float]:
        fields = {"boot_s": self.boot_s, "wake_s": self.wake_s, "ramp_s": self.ramp_s, "sleep_s": self.sleep_s}
        return {k: v for k, v in fields.items() if v is not None}


def raise_fd_limit(needed: int) -> None:
    """Lift the soft open-files limit toward the hard one: a 1,000-miner site holds ~2,000 sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, needed))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < needed:
        log.warning("open-files limit %d is below the ~%d this site needs (raise `ulimit -n`)", want, needed)


def make_clock(speed: float | None) -> SimClock:
    """Share the demo's clock when KUAT_CLOCK is set, so the simulator's timestamps match the other processes."""
    return SimClock(speed=speed if speed is not None else kuat_clock.speed(), start=kuat_clock.time())


class SimServer:
    def __init__(self, site_file: SiteFile, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.site = Site(site_file, make_clock(self.config.speed), **self.config.physics())
        self.miners = MinerServers(self.site, ServeOptions(port_offset=self.config.port_offset,
                                                           slow_s=self.config.slow_s))
        self.pdus: Stoppable | None = None
        self.control: ControlApi | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def pdu_port(self) -> int:
        return SNMP_PORT + self.config.port_offset

    async def start(self) -> SimServer:
        raise_fd_limit(FDS_PER_MINER * len(self.site.miners) + 256)
        try:
            await self.miners.start()
            if self.config.serve_pdus:
                self.pdus = await start_pdus(self.site, self.pdu_port)
            if self.config.control_port is not None:
                self.control = await ControlApi(self.site, self.config.control_port, self.miners).start()
        except BaseException:
            await self.stop()
            raise
        self._ticker = asyncio.create_task(self.site.run_ticker(), name="sim-ticker")
        return self

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self.control is not None:
            await self.control.stop()
            self.control = None
        if self.pdus is not None:
            await self.pdus.stop()
            self.pdus = None
        await self.miners.stop()

    def summary(self) -> dict[str, Any]:
        """What is being served, for the CLI table and logs."""
        pdus: dict[str, Any] = {"count": len(self.site.pdus), "port": self.pdu_port if self.pdus else None}
        if self.site.pdus:
            ips = [p.ip for p in self.site.pdus]
            pdus.update(first=min(ips, key=_ip_key), last=max(ips, key=_ip_key))
        return {
            "site": self.site.name,
            "miners": self.miners.summary(),
            "pdus": pdus,
            "control": self.control.url if self.control else None,
            "speed": self.site.clock.speed,
        }


def _ip_key(ip: str) -> tuple[int, ...]:
    return tuple(int(x) for x in ip.split("."))


async def start_pdus(site: Site, port: int) -> Stoppable | None:
    """Start the SNMP PDU agents if `sim.pdus` provides them; otherwise say so and carry on with miners only."""
    try:
        module = importlib.import_module("sim.pdus")
    except ImportError as exc:
        log.warning("PDUs are not served: sim.pdus is not available (%s)", exc)
        return None
    start = getattr(module, "start_pdu_agents", None)
    if start is None:
        log.warning("PDUs are not served: sim.pdus has no start_pdu_agents() yet")
        return None
    agents: Stoppable = await start(site, port)
    log.info("PDUs: %d SNMP agents on udp port %d", len(site.pdus), port)
    return agents


def format_summary(summary: dict[str, Any]) -> str:
    """A plain table: firmware, miner count, address range, ports; then PDUs and the control URL."""
    rows = [("firmware", "miners", "addresses", "tcp ports")]
    for fw, info in summary["miners"].items():
        rows.append((fw, str(info["miners"]), f"{info['first']} .. {info['last']}",
                     ",".join(str(p) for p in info["ports"])))
    pdus = summary["pdus"]
    if pdus["count"]:
        port = f"udp {pdus['port']}" if pdus["port"] else "not served"
        rows.append(("PDUs (SNMP)", str(pdus["count"]), f"{pdus['first']} .. {pdus['last']}", port))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"site {summary['site']} (clock speed x{summary['speed']:g})"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"control API: {summary['control'] or 'off'}")
    return "\n".join(lines)
