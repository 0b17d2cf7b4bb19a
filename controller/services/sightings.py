"""Hands device sightings to the registry in batches, and only when a device's identity, pools or place changed.

The registry records what the fleet reports (a new machine becomes a pending registration; a changed pool or
firmware is noted). Telemetry arrives at up to 20k samples/s, so `offer` only compares a fingerprint per sample and
`flush` (a scheduler job, every few seconds) makes one registry call per site and gateway. Unchanged devices are
handed over again every `heartbeat_s`, so the registry's "last seen" (missing machines, fresh power) stays current.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kuat.wire import v1
from registry.contract import v1 as contract

log = logging.getLogger(__name__)

Sink = Callable[[str, str, list[v1.MinerSample], datetime], Any]  # site, gateway, samples, at


HASHING = frozenset({v1.MinerState.MINING, v1.MinerState.DEGRADED})


def fingerprint(m: v1.MinerSample, gateway: str) -> int:
    """What the registry cares about, hashed (runs for every sample: kept to plain tuples, no generators)."""
    outlet = (m.outlet.pdu, m.outlet.outlet) if m.outlet else None
    pools = tuple([(p.url, p.user) for p in m.pools])
    hashing = m.state in HASHING  # a machine starting or stopping to hash is news to the registry at once
    return hash((m.make, m.model, m.serial, m.mac, m.firmware, m.ip, m.hostname, pools, outlet, gateway, hashing))


def _cut(value: str | None, n: int) -> str | None:
    return value[:n] if value else None


def to_sighting(m: v1.MinerSample, gateway: str, at: datetime) -> contract.Sighting:
    """A gateway's sample as the registry's `Sighting` (registry.contract.v1): the registry never sees a gateway
    message, and the two versions move independently. Over-long strings are cut to the contract's limits."""
    outlet = m.outlet
    placement = contract.Placement(gateway=_cut(gateway, 100), ip=_cut(m.ip, 45),
                                   pdu=_cut(outlet.pdu, 100) if outlet else None,
                                   pdu_outlet=outlet.outlet if outlet else None)  # fmt: skip
    hashing = m.available and m.state in HASHING and (m.hashrate_ths is None or m.hashrate_ths > 0)
    return contract.Sighting(serial=_cut(m.serial, 100), mac=_cut(m.mac.lower() if m.mac else None, 17),
                             make=_cut(m.make, 50), model=_cut(m.model, 100), firmware=_cut(m.firmware, 200),
                             hashing=hashing, state=m.state.value[:20],
                             hashrate_ths=m.hashrate_ths, power_w=m.power_w,
                             pools=[p.url for p in m.pools][:10], placement=placement, seen_at=at)  # fmt: skip


class SightingsBridge:
    def __init__(
        self, sink: Sink | None, on_sent: Callable[[int], None] | None = None, heartbeat_s: float = 300.0
    ) -> None:
        self.sink = sink
        self._on_sent = on_sent
        self.heartbeat_s = heartbeat_s
        self._seen: dict[tuple[str, str], tuple[int, float]] = {}  # (site, device id) -> (fingerprint, when)
        self._pending: dict[tuple[str, str], tuple[dict[str, v1.MinerSample], datetime]] = {}
        self._lock = threading.Lock()

    def offer(self, site: str, gateway: str, miners: list[v1.MinerSample], at: datetime) -> None:
        """Queue the miners whose fingerprint changed (only those that say who they are: serial or MAC)."""
        if self.sink is None:
            return
        seen, now, heartbeat = self._seen, time.monotonic(), self.heartbeat_s
        changed = []
        for m in miners:
            if m.serial is None and m.mac is None:
                continue
            fp = fingerprint(m, gateway)
            key = (site, m.device_id)
            last = seen.get(key)
            if last is None or last[0] != fp or now - last[1] > heartbeat:
                seen[key] = (fp, now)
                changed.append(m)
        if not changed:
            return
        with self._lock:
            entry = self._pending.get((site, gateway))
            if entry is None:
                self._pending[(site, gateway)] = ({m.device_id: m for m in changed}, at)
            else:
                entry[0].update((m.device_id, m) for m in changed)
                self._pending[(site, gateway)] = (entry[0], max(entry[1], at))

    def flush(self) -> int:
        """One registry call per (site, gateway); a failed call is retried with the next telemetry."""
        if self.sink is None:
            return 0
        with self._lock:
            pending, self._pending = self._pending, {}
        sent = 0
        for (site, gateway), (by_id, at) in pending.items():
            samples = list(by_id.values())
            try:
                self.sink(site, gateway, samples, at)
            except Exception:
                log.exception("registry sightings for %s/%s failed; %d offered again with the next telemetry",
                              site, gateway, len(samples))
                self._forget(site, samples)
                continue
            sent += len(samples)
        if sent:
            log.info("handed %d device sightings to the registry", sent)
            if self._on_sent:
                self._on_sent(sent)
        return sent

    def _forget(self, site: str, samples: list[v1.MinerSample]) -> None:
        """Drop fingerprints so the next telemetry offers these devices again."""
        for m in samples:
            self._seen.pop((site, m.device_id), None)
