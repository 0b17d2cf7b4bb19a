"""The power gate: quota.rights applied to the live fleet, cached so the quota loop pays a dictionary lookup per
machine per run, and remembered per machine so the API and the dashboard can say why a machine has or has no power.

The rule itself is pure (quota/rights.py). This module maps a gateway's `MinerSample` to what the rule needs
(serial, pool URLs; the serial and pools a device reported before, while it sleeps and tells none: a machine slept
by a cap must get its right back when the cap lifts), rebuilds the rule when the
mirror changes, when the Astana date changes (a licence ends at Astana midnight) and once a minute (an allowance
ends at its hour: a minute late at most), and keeps the last answer per device.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from kuat.wire import v1
from quota.rights import POWERED, Mirror, Right, Rights
from serverkit.timeutil import astana_date

log = logging.getLogger(__name__)

HASHING = frozenset({v1.MinerState.MINING, v1.MinerState.DEGRADED})
REBUILD_EVERY_S = 60.0  # real seconds; the rule's day and allowances move with the clock


@dataclass(frozen=True, slots=True)
class DeviceRight:
    device_id: str
    serial: str | None
    right: Right
    at: datetime


class PowerGate:
    """`gate()` gives the quota loop a function `(device_id, sample) -> powered?` for one run."""

    def __init__(self, load: Callable[[], tuple[int, Mirror]], trust: timedelta, now: Callable[[], datetime]) -> None:
        self._load = load  # -> (mirror version, mirror); the version changes whenever the mirror does
        self.trust = trust
        self._now = now
        self._lock = threading.Lock()
        self._version = -1
        self._built = -float("inf")
        self._rights: Rights | None = None
        self._cache: dict[tuple[str | None, tuple[str, ...], bool], Right] = {}
        self._last: dict[str, DeviceRight] = {}
        self._pools: dict[str, tuple[str, ...]] = {}  # device -> the pools it last reported (asleep it tells none)
        self._serials: dict[str, str] = {}  # device (MAC-based id) -> the serial it reported (asleep it tells none)
        self._failed_load = False

    def rights(self) -> Rights:
        """The rule for now; rebuilt when the mirror changed or `REBUILD_EVERY_S` passed. A mirror that cannot be
        read keeps the last rule (its own trust window still applies); with none, everything is dark."""
        with self._lock:
            try:
                version, mirror = self._load()
                self._failed_load = False
            except Exception:
                if not self._failed_load:
                    log.exception("power gate: the registry mirror cannot be read; keeping the last decisions")
                self._failed_load = True
                version, mirror = self._version, None
            now = self._now()
            stale = time.monotonic() - self._built >= REBUILD_EVERY_S or \
                (self._rights is not None and astana_date(now) != self._rights.today)  # Astana midnight: at once
            if self._rights is None or version != self._version or stale:
                if mirror is None:
                    mirror = self._rights.mirror if self._rights is not None else Mirror(dpc="?")
                self._rights = Rights(mirror, now, self.trust)
                self._version, self._built = version, time.monotonic()
                self._cache = {}
            return self._rights

    def gate(self) -> Callable[[str, v1.MinerSample], bool]:
        rights = self.rights()
        cache, last, at, remembered, serials = self._cache, self._last, rights.now, self._pools, self._serials

        def powered(device_id: str, sample: v1.MinerSample) -> bool:
            serial = sample.serial
            if serial:
                serials[device_id] = serial
            else:  # stock firmware asleep (or its web interface down a moment) tells no serial
                serial = serials.get(device_id)
            pools = tuple([p.url for p in sample.pools])
            asleep = not (sample.available and sample.state in HASHING)
            if pools:
                remembered[device_id] = pools
            elif asleep:
                pools = remembered.get(device_id, ())
            key = (serial, pools, asleep)
            right = cache.get(key)
            if right is None:
                right = cache[key] = rights.of(serial, pools, asleep)
            known = last.get(device_id)
            if known is None or known.right is not right:
                last[device_id] = DeviceRight(device_id, serial, right, at)
            return right.reason in POWERED

        return powered

    def dark_count(self) -> int:
        """Machines whose last answer was "no power"."""
        return sum(1 for d in list(self._last.values()) if not d.right.powered)

    def dark_ids(self) -> set[str]:
        """The devices whose last answer was "no power" (the planner leaves them out of tomorrow's fleet)."""
        return {d.device_id for d in list(self._last.values()) if not d.right.powered}

    def why(self, device_id: str) -> DeviceRight | None:
        """The last answer for a device the loop has seen (None: not seen by a run yet)."""
        return self._last.get(device_id)

    def check(self, device_id: str, sample: v1.MinerSample) -> DeviceRight:
        """The answer now, for a device the loop may not have run over yet (the API)."""
        self.gate()(device_id, sample)
        return self._last[device_id]
