"""Wiring of the gateway agent: config -> fleet -> poll loop -> buffer/MQTT; commands; lease failsafe.

`Agent.run(stop)` is the whole daemon; `kuat agent run` adds signal handling around it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from agent import clock, drivers
from agent.actuator import Actuator
from agent.buffer import Buffer
from agent.commands import CommandProcessor
from agent.config import AgentConfig, MinerConfig, PduConfig
from agent.coordinator import Coordinator, Cycle, DriverOpener, Fleet, MinerDevice
from agent.drivers.base import MinerDriver, PduDriver
from agent.failsafe import Failsafe, Lease
from agent.metrics import AgentHealth, MetricsServer, age
from agent.priority import CommandsFirst
from agent.publisher import Publisher
from agent.transport.snmp import V3Auth
from kuat.wire import v1

log = logging.getLogger(__name__)


class RealDrivers:
    """Opens the real drivers (agent.drivers.open_miner / open_pdu), applying the config's port overrides."""

    def __init__(self, port_offset: int = 0, timeout_s: float = 5.0) -> None:
        self.port_offset = port_offset
        self.timeout_s = timeout_s

    async def open_miner(self, cfg: MinerConfig) -> MinerDriver:
        return await drivers.open_miner(
            cfg.ip,
            driver=cfg.driver,
            timeout=self.timeout_s,
            rpc_port=cfg.rpc_port or 4028 + self.port_offset,
            web_port=cfg.web_port or 80 + self.port_offset,
            **cfg.credentials.model_dump(exclude_none=True),
        )

    async def open_pdu(self, cfg: PduConfig) -> PduDriver:
        v3 = V3Auth(**cfg.v3.model_dump()) if cfg.v3 is not None else None
        return await drivers.open_pdu(
            cfg.ip,
            family=cfg.family,
            community=cfg.community,
            write_community=cfg.write_community,
            port=cfg.port or 161 + self.port_offset,
            v3=v3,
            timeout=min(self.timeout_s, 2.0),  # per SNMP request; a read is several requests
        )


class Agent:
    def __init__(self, cfg: AgentConfig, opener: DriverOpener | None = None) -> None:
        self.cfg = cfg
        self.buffer = Buffer(cfg.buffer.path, cfg.buffer.max_rows, cfg.buffer.max_mb, cfg.buffer.command_memory,
                             cfg.buffer.reserve_kb)
        self.unbuffered = 0  # cycles whose telemetry could not be buffered (a full disk beyond what dropping frees)
        self.fleet = Fleet.from_config(cfg.devices.miners, cfg.devices.pdus)
        self._restore_learned_ids()
        opener = opener or RealDrivers(cfg.port_offset, cfg.poll.device_timeout_s)
        # commands before polls (agent.priority): a read waits for a batch being applied, at most two intervals
        # (telemetry misses at most one tick; 500 setpoints take 1-2 s on the bench's loaded 2-core machine)
        self.gate = CommandsFirst(max_wait_s=2 * cfg.poll.interval_s)
        self.coordinator = Coordinator(
            self.fleet,
            opener,
            interval_s=cfg.poll.interval_s,
            concurrency=cfg.poll.concurrency,
            device_timeout_s=cfg.poll.device_timeout_s,
            pdu_timeout_s=cfg.poll.pdu_timeout_s,
            gate=self.gate,
        )
        self.coordinator.on_new_id = self._remember_id
        self.actuator = Actuator(self.fleet, opener, cfg.poll.device_timeout_s)
        self.lease = Lease(self.buffer)
        self.failsafe = Failsafe(cfg.failsafe, self.lease, self.fleet, self.actuator, self.gate)
        self.commands = CommandProcessor(
            cfg.gateway, self.fleet, self.actuator, self.buffer, self.failsafe,
            concurrency=cfg.poll.concurrency, on_applied=self.coordinator.request_refresh, gate=self.gate,
        )
        self.publisher = Publisher(cfg, self.buffer, self._on_command, devices=len(self.fleet.miners) + len(
            self.fleet.pdus))
        self._tasks: set[asyncio.Task[None]] = set()
        m = cfg.metrics
        self.metrics = MetricsServer(m.host, m.port, self.health) if m is not None else None

    def health(self) -> AgentHealth:
        last = self.coordinator.last_cycle
        return AgentHealth(
            broker_connected=self.publisher.connected,
            cycles=self.coordinator.cycles,
            cycles_skipped=self.coordinator.skipped,
            last_cycle_s=None if last is None else last.duration_s,
            last_cycle_age_s=None if last is None else age(last.started + last.duration_s),
            miners_total=len(self.fleet.miners),
            miners_up=0 if last is None else sum(m.available for m in last.miners),
            pdus_total=len(self.fleet.pdus),
            pdus_up=0 if last is None else sum(p.available for p in last.pdus),
            buffer_rows=self.buffer.count(),
            buffer_dropped=self.buffer.dropped,
            buffer_disk_full=self.buffer.disk_full,
            cycles_unbuffered=self.unbuffered,
            batches_published=self.publisher.published,
            batches_replayed=self.publisher.replayed,
            failsafe_active=self.lease.failsafe_active,
            lease_seconds_left=self.lease.seconds_left(),
            interval_s=self.cfg.poll.interval_s,
        )

    # ------------------------------------------------------------ device ids
    def _restore_learned_ids(self) -> None:
        """Miners without a configured id keep the MAC id learned in an earlier run, even while unreachable."""
        for dev in self.fleet.miners:
            learned = None if dev.cfg.id else self.buffer.get_meta(f"id:{dev.ip}")
            if learned:
                self.fleet.rename(dev, learned)

    def _remember_id(self, dev: MinerDevice) -> None:
        self.buffer.set_meta(f"id:{dev.ip}", dev.device_id)

    # ------------------------------------------------------------ telemetry
    def batch(self, cycle: Cycle) -> v1.TelemetryBatch:
        return v1.TelemetryBatch(
            site=self.cfg.site,
            gateway=self.cfg.gateway,
            seq=self.buffer.next_seq(),
            ts=clock.now(),
            cycle_s=round(cycle.duration_s, 3),
            miners=cycle.miners,
            pdus=cycle.pdus,
            lease=self.lease.status(),
        )

    async def _publish_cycle(self, cycle: Cycle) -> None:
        try:
            batch = self.batch(cycle)
            self.publisher.submit(batch.seq, v1.dumps(batch))
        except (sqlite3.Error, OSError) as exc:  # e.g. a full disk: keep polling and obeying commands
            self.unbuffered += 1
            log.error("this cycle's telemetry could not be buffered and is lost (%d so far): %s", self.unbuffered, exc)
            return
        up = sum(m.available for m in cycle.miners) + sum(p.available for p in cycle.pdus)
        log.debug("cycle %d: %d/%d devices answered in %.2fs", batch.seq, up, cycle.devices, cycle.duration_s)

    # ------------------------------------------------------------ commands
    def _on_command(self, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, payload: bytes) -> None:
        try:
            ack = await self.commands.handle_raw(payload)
        except Exception:  # keep the daemon alive; the controller sees no ack and retries
            log.exception("command handling crashed (payload %r...)", payload[:200])
            return
        self.publisher.publish_ack(ack)

    # ------------------------------------------------------------ lifecycle
    async def run(self, stop: asyncio.Event) -> None:
        n_m, n_p = len(self.fleet.miners), len(self.fleet.pdus)
        log.info("agent %s/%s: %d miners, %d PDUs, poll every %.0fs, failsafe %s", self.cfg.site, self.cfg.gateway,
                 n_m, n_p, self.cfg.poll.interval_s, self.cfg.failsafe.mode)
        self.publisher.start()
        if self.metrics is not None:
            await self.metrics.start()
        failsafe = asyncio.create_task(self.failsafe.run(stop), name="failsafe")
        try:
            await self.coordinator.run(self._publish_cycle, stop)
        finally:
            stop.set()
            await failsafe
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=self.cfg.poll.device_timeout_s)
            await self.publisher.stop()
            if self.metrics is not None:
                await self.metrics.stop()
            self.buffer.close()
            log.info("agent stopped after %d cycles", self.coordinator.cycles)
