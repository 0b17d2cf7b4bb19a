"""The poll loop: read every miner and PDU each interval, like Home Assistant's DataUpdateCoordinator.

One cycle at a time (a cycle that overruns makes the next tick be skipped, and says so), bounded concurrency
(asyncio.Semaphore), a timeout per device (asyncio.wait_for), errors isolated per device and logged once per
change of availability. Drivers are opened lazily (identification needs the device to answer) and re-tried each
cycle until they open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar

from agent.config import MinerConfig, PduConfig
from agent.drivers.base import DeviceError, DeviceUnreachable, MinerDriver, PduDriver
from agent.outlet_map import OutletMap
from agent.priority import CommandsFirst
from kuat.wire import v1

log = logging.getLogger(__name__)

T = TypeVar("T")
S = TypeVar("S", v1.MinerSample, v1.PduSample)


class DriverOpener(Protocol):
    """Turns a device's config into a driver (identifying the device if its driver is "auto")."""

    async def open_miner(self, cfg: MinerConfig) -> MinerDriver: ...

    async def open_pdu(self, cfg: PduConfig) -> PduDriver: ...


@dataclass
class MinerDevice:
    cfg: MinerConfig
    device_id: str
    driver: MinerDriver | None = None
    last: v1.MinerSample | None = None
    available: bool | None = None  # None until the first cycle

    @property
    def ip(self) -> str:
        return self.cfg.ip


@dataclass
class PduDevice:
    cfg: PduConfig
    device_id: str
    driver: PduDriver | None = None
    last: v1.PduSample | None = None
    available: bool | None = None

    @property
    def ip(self) -> str:
        return self.cfg.ip


@dataclass
class Fleet:
    """The devices of one gateway, found by id, by address or (miners) by MAC."""

    miners: list[MinerDevice] = field(default_factory=list)
    pdus: list[PduDevice] = field(default_factory=list)
    outlets: OutletMap = field(default_factory=OutletMap)

    @classmethod
    def from_config(cls, miners: Iterable[MinerConfig], pdus: Iterable[PduConfig]) -> Fleet:
        fleet = cls(
            miners=[MinerDevice(m, m.id or f"ip-{m.ip}") for m in miners],
            pdus=[PduDevice(p, p.device_id) for p in pdus],
        )
        for m in fleet.miners:
            if m.cfg.outlet is not None:
                fleet.outlets.add(m.device_id, v1.OutletRef(pdu=m.cfg.outlet.pdu, outlet=m.cfg.outlet.outlet))
        return fleet

    _index: dict[str, MinerDevice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._reindex()

    def miner(self, key: str) -> MinerDevice | None:
        """By device id, `ip-<address>`, address or MAC."""
        return self._index.get(key) or self._index.get(key.lower())

    def _reindex(self) -> None:
        self._index = {}
        for m in self.miners:
            keys = [m.device_id, m.ip, f"ip-{m.ip}"] + ([m.last.mac.lower()] if m.last and m.last.mac else [])
            self._index.update(dict.fromkeys(keys, m))

    def pdu(self, key: str) -> PduDevice | None:
        for p in self.pdus:
            if key in (p.device_id, p.ip, f"pdu-{p.ip}"):
                return p
        return None

    def learn_id(self, dev: MinerDevice, mac: str | None) -> bool:
        """Without an id in config, a miner is known by its MAC once read (the wire's stable id). True if changed."""
        if mac and self._index.get(mac.lower()) is not dev:
            self._index[mac.lower()] = dev  # findable by MAC from now on
        if dev.cfg.id or not mac or dev.device_id == mac.lower():
            return False
        self.rename(dev, mac.lower())
        log.info("miner %s is now known by its MAC %s", dev.ip, dev.device_id)
        return True

    def rename(self, dev: MinerDevice, new_id: str) -> None:
        old, dev.device_id = dev.device_id, new_id
        self.outlets.rename(old, new_id)
        self._reindex()


@dataclass
class Cycle:
    """One poll cycle's result."""

    miners: list[v1.MinerSample]
    pdus: list[v1.PduSample]
    started: float  # time.monotonic()
    duration_s: float

    @property
    def devices(self) -> int:
        return len(self.miners) + len(self.pdus)


OnCycle = Callable[[Cycle], Awaitable[None]]


class Coordinator:
    def __init__(
        self,
        fleet: Fleet,
        opener: DriverOpener,
        *,
        interval_s: float = 10.0,
        concurrency: int = 64,
        device_timeout_s: float = 5.0,
        pdu_timeout_s: float | None = None,
        refresh_gap_s: float | None = None,
        gate: CommandsFirst | None = None,
    ) -> None:
        self.fleet = fleet
        self.gate = gate  # reads not yet started wait while commands are applied (agent.priority)
        self.opener = opener
        self.interval_s = interval_s
        # an early (command-triggered) cycle starts no sooner than this after the previous one: at most 2x the work
        self.refresh_gap_s = interval_s / 2 if refresh_gap_s is None else refresh_gap_s
        self.device_timeout_s = device_timeout_s
        self.pdu_timeout_s = pdu_timeout_s or device_timeout_s
        self._sem = asyncio.Semaphore(concurrency)
        self._refresh = asyncio.Event()
        self.on_new_id: Callable[[MinerDevice], None] | None = None  # a miner became known by its MAC
        self.cycles = 0
        self.skipped = 0
        self.last_cycle: Cycle | None = None

    # ------------------------------------------------------------ one cycle
    async def poll_once(self) -> Cycle:
        started = time.monotonic()
        pdu_samples, miner_samples = await asyncio.gather(
            asyncio.gather(*(self._guarded(self._read_pdu(p)) for p in self.fleet.pdus)),
            asyncio.gather(*(self._guarded(self._read_miner(m)) for m in self.fleet.miners)),
        )
        outlets = _outlet_index(pdu_samples)
        miners = [self._with_outlet(sample, outlets) for sample in miner_samples]
        cycle = Cycle(miners, list(pdu_samples), started, time.monotonic() - started)
        self.cycles += 1
        self.last_cycle = cycle
        return cycle

    def _with_outlet(
        self, sample: v1.MinerSample, outlets: dict[tuple[str, int], v1.OutletSample]
    ) -> v1.MinerSample:
        ref = self.fleet.outlets.outlet_of(sample.device_id)
        merged = self.fleet.outlets.merge(sample, outlets.get((ref.pdu, ref.outlet)) if ref else None)
        dev = self.fleet.miner(sample.device_id)
        if dev is not None and dev.cfg.placement is not None:
            merged.placement = v1.Placement(**dev.cfg.placement.model_dump())
        if dev is not None and merged.available:
            dev.last = merged  # what commands and the failsafe look at: measured power, outlet, capabilities
        return merged

    async def _guarded(self, read: Awaitable[T]) -> T:
        async with self._sem:
            if self.gate is not None:  # checked once a slot is free: the reads queued for slots wait too
                await self.gate.before_read()
            return await read

    async def _read_miner(self, dev: MinerDevice) -> v1.MinerSample:
        return await self._read(dev, self._miner_sample(dev), self.device_timeout_s, partial(_offline_miner, dev))

    async def _read_pdu(self, dev: PduDevice) -> v1.PduSample:
        return await self._read(dev, self._pdu_sample(dev), self.pdu_timeout_s, partial(_offline_pdu, dev))

    async def _read(
        self, dev: MinerDevice | PduDevice, work: Awaitable[S], timeout_s: float, offline: Callable[[str], S]
    ) -> S:
        """One device's read under its timeout; any failure becomes an unavailable sample saying why."""
        try:
            sample = await asyncio.wait_for(work, timeout_s)
        except Exception as exc:  # one device's failure, whatever it is, never spoils the cycle
            why = _why(exc, timeout_s)
            self._availability(dev, False, why, exc)
            return offline(why)
        self._availability(dev, sample.available, "; ".join(sample.errors) or "reported unavailable", None)
        return sample

    async def _miner_sample(self, dev: MinerDevice) -> v1.MinerSample:
        if dev.driver is None:
            dev.driver = await self.opener.open_miner(dev.cfg)
        sample = await dev.driver.read()
        if self.fleet.learn_id(dev, sample.mac) and self.on_new_id is not None:
            self.on_new_id(dev)
        sample.device_id, sample.ip = dev.device_id, dev.ip
        return sample  # dev.last is set once the outlet's power is merged in

    async def _pdu_sample(self, dev: PduDevice) -> v1.PduSample:
        if dev.driver is None:
            dev.driver = await self.opener.open_pdu(dev.cfg)
        sample = await dev.driver.read()
        sample.device_id, sample.ip = dev.device_id, dev.ip
        if sample.available:
            dev.last = sample
        return sample

    def _availability(self, dev: MinerDevice | PduDevice, available: bool, why: str, exc: BaseException | None) -> None:
        """Log only changes: available -> unavailable (with the reason) and back."""
        if dev.available == available:
            return
        kind = "miner" if isinstance(dev, MinerDevice) else "pdu"
        if available:
            log.log(
                logging.DEBUG if dev.available is None else logging.INFO,
                "%s %s (%s) available",
                kind,
                dev.device_id,
                dev.ip,
            )
        elif exc is not None and not isinstance(exc, DeviceError | TimeoutError | OSError):
            log.error("%s %s (%s) unavailable: driver error %s", kind, dev.device_id, dev.ip, why, exc_info=exc)
        else:
            log.warning("%s %s (%s) unavailable: %s", kind, dev.device_id, dev.ip, why)
        dev.available = available

    # ------------------------------------------------------------ the loop
    def request_refresh(self) -> None:
        """Start the next cycle early (after a command, to show its effect soon): `refresh_gap_s` after the last."""
        self._refresh.set()

    async def run(self, on_cycle: OnCycle, stop: asyncio.Event) -> None:
        """Cycle every interval until `stop` is set. Cycles never overlap; a late cycle skips the ticks it missed."""
        next_tick = time.monotonic()
        while not stop.is_set():
            self._refresh.clear()
            cycle = await self.poll_once()
            await on_cycle(cycle)
            next_tick += self.interval_s
            now = time.monotonic()
            if now > next_tick:
                missed = int((now - next_tick) // self.interval_s) + 1
                self.skipped += missed
                log.warning(
                    "poll cycle overran: %.1fs polling, %.1fs in all (interval %.1fs): skipping %d tick(s)",
                    cycle.duration_s,
                    now - cycle.started,
                    self.interval_s,
                    missed,
                )
                next_tick += missed * self.interval_s
            await _wait_any(stop, self._refresh, next_tick - time.monotonic())
            if self._refresh.is_set() and not stop.is_set():
                early = min(next_tick, cycle.started + self.refresh_gap_s)
                await _wait_any(stop, asyncio.Event(), early - time.monotonic())
                next_tick = time.monotonic()


async def _wait_any(stop: asyncio.Event, refresh: asyncio.Event, delay_s: float) -> None:
    if delay_s <= 0:
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(refresh.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def _why(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:.1f}s"
    if isinstance(exc, DeviceUnreachable):
        return f"unreachable: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _offline_miner(dev: MinerDevice, why: str) -> v1.MinerSample:
    """What we still know about a miner that did not answer: its identity from the last good read."""
    last = dev.last
    return v1.MinerSample(
        device_id=dev.device_id,
        ip=dev.ip,
        available=False,
        state=v1.MinerState.OFFLINE,
        make=last.make if last else None,
        model=last.model if last else None,
        firmware=last.firmware if last else None,
        serial=last.serial if last else None,
        mac=last.mac if last else None,
        hostname=last.hostname if last else None,
        nominal_ths=last.nominal_ths if last else None,
        capabilities=last.capabilities.model_copy() if last else v1.Capabilities(),
        hashrate_ths=0.0,
        errors=[why],
    )


def _offline_pdu(dev: PduDevice, why: str) -> v1.PduSample:
    last = dev.last
    return v1.PduSample(
        device_id=dev.device_id,
        ip=dev.ip,
        available=False,
        family=last.family if last else None,
        model=last.model if last else None,
        serial=last.serial if last else None,
        errors=[why],
    )


def _outlet_index(pdus: Iterable[v1.PduSample]) -> dict[tuple[str, int], v1.OutletSample]:
    return {(p.device_id, o.index): o for p in pdus if p.available for o in p.outlets}
