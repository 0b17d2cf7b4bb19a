"""The live state of the fleet: the newest sample of every device and the state of every gateway, in dicts.

Written by the ingest thread only; readers (API, scheduler) take consistent snapshots under `lock`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from kuat.wire import v1

UNASSIGNED = "unassigned"


@dataclass(slots=True)
class DeviceLive:
    site: str
    gateway: str
    device_id: str
    kind: str  # "miner" or "pdu"
    sample: v1.MinerSample | v1.PduSample
    ts: datetime  # the batch's time (end of the agent's poll cycle)
    received: float  # epoch seconds when the controller took it
    owner: str
    source: str  # energy source (EnergySource value)


@dataclass(slots=True)
class GatewayLive:
    site: str
    gateway: str
    online: bool = True
    last_seen: float | None = None  # epoch s of the last message of any kind
    last_batch_ts: datetime | None = None
    seq: int | None = None  # newest live telemetry seq
    agent_version: str | None = None
    devices: int | None = None
    lease: v1.LeaseStatus | None = None
    reason: str = ""  # why it is offline: "last will", "no message for 90 s", ...
    changed: float | None = None  # epoch s of the last online/offline change
    recent_seqs: dict[int, datetime] = field(default_factory=dict)  # seq -> batch ts, bounded: duplicate detection


@dataclass
class LiveState:
    devices: dict[tuple[str, str], DeviceLive] = field(default_factory=dict)  # (site, device id)
    gateways: dict[tuple[str, str], GatewayLive] = field(default_factory=dict)  # (site, gateway)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gateway(self, site: str, gateway: str) -> GatewayLive:
        """The gateway's record, created on first sight (caller holds `lock`)."""
        key = (site, gateway)
        gw = self.gateways.get(key)
        if gw is None:
            gw = self.gateways[key] = GatewayLive(site, gateway)
        return gw

    def find(self, device_id: str, site: str | None = None) -> list[DeviceLive]:
        with self.lock:
            if site is not None:
                d = self.devices.get((site, device_id))
                return [d] if d else []
            return [d for (_, dev), d in self.devices.items() if dev == device_id]

    def device_list(self) -> list[DeviceLive]:
        with self.lock:
            return list(self.devices.values())

    def gateway_list(self) -> list[GatewayLive]:
        with self.lock:
            return list(self.gateways.values())
