"""Gateways online/offline: from their retained state messages (the agent's MQTT last will says offline) and from
silence (no message for `gateway_timeout_s` means offline even if no will arrived, e.g. the broker restarted)."""

from __future__ import annotations

import logging
import time
from typing import Any

from controller.live import GatewayLive, LiveState
from kuat.wire import v1

log = logging.getLogger(__name__)


class GatewayService:
    def __init__(self, live: LiveState, timeout_s: float) -> None:
        self.live = live
        self.timeout_s = timeout_s

    def on_state(self, site: str, gateway: str, state: v1.GatewayState, received: float | None = None) -> None:
        received = time.time() if received is None else received
        with self.live.lock:
            gw = self.live.gateway(site, gateway)
            gw.last_seen = received
            gw.agent_version = state.agent_version or gw.agent_version
            gw.devices = state.devices if state.devices is not None else gw.devices
            if gw.online != state.online or gw.changed is None:
                gw.online, gw.changed = state.online, received
                gw.reason = "" if state.online else "last will / agent said offline"
                log.info("gateway %s/%s %s", site, gateway, "online" if state.online else f"offline ({gw.reason})")

    def check_timeouts(self, now: float | None = None) -> list[GatewayLive]:
        """Mark silent gateways offline; return those that just went offline."""
        now = time.time() if now is None else now
        gone = []
        with self.live.lock:
            for gw in self.live.gateways.values():
                if gw.online and gw.last_seen is not None and now - gw.last_seen > self.timeout_s:
                    gw.online, gw.changed = False, now
                    gw.reason = f"no message for {now - gw.last_seen:.0f} s"
                    gone.append(gw)
        for gw in gone:
            log.warning("gateway %s/%s offline: %s", gw.site, gw.gateway, gw.reason)
        return gone

    def is_online(self, site: str, gateway: str) -> bool:
        gw = self.live.gateways.get((site, gateway))
        return bool(gw and gw.online)

    def listing(self) -> list[dict[str, Any]]:
        out = []
        for gw in sorted(self.live.gateway_list(), key=lambda g: (g.site, g.gateway)):
            out.append({
                "site": gw.site, "gateway": gw.gateway, "online": gw.online, "reason": gw.reason or None,
                "last_seen": _iso(gw.last_seen), "changed": _iso(gw.changed), "seq": gw.seq,
                "last_batch_ts": gw.last_batch_ts, "agent_version": gw.agent_version, "devices": gw.devices,
                "lease": gw.lease.model_dump(mode="json") if gw.lease else None,
            })  # fmt: skip
        return out


def _iso(epoch: float | None) -> str | None:
    from datetime import UTC, datetime

    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()
