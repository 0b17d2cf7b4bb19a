"""Dispatch: the allocator's setpoints, cut into one batch per gateway and published with a lease.

Every loop run sends every machine's setpoint again: that renews the agents' leases (the agent applies only what
changed, and re-sends to machines that drifted). If the controller dies, the leases run out and each agent puts its
site in its configured safe state by itself (agent.failsafe).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kuat.wire import v1

log = logging.getLogger(__name__)

# (site, gateway, setpoints, lease_s, issued_by) -> something with .command.id (controller CommandService)
SendBatch = Callable[[str, str, list[v1.Setpoint], float, str | None], object]
ISSUER = "quota-loop"


@dataclass
class DispatchResult:
    commands: dict[str, str] = field(default_factory=dict)  # gateway -> command id
    failed: dict[str, str] = field(default_factory=dict)  # gateway -> why
    setpoints: int = 0


def by_gateway(setpoints: Iterable[v1.Setpoint], gateway_of: Mapping[str, str]) -> dict[str, list[v1.Setpoint]]:
    """Group setpoints by the gateway their device reports through (devices with no gateway are dropped)."""
    out: dict[str, list[v1.Setpoint]] = defaultdict(list)
    for sp in setpoints:
        gw = gateway_of.get(sp.device_id)
        if gw is not None:
            out[gw].append(sp)
    return dict(out)


def send_batches(
    send: SendBatch, site: str, batches: Mapping[str, list[v1.Setpoint]], lease_s: float
) -> DispatchResult:
    """Publish one setpoint batch per gateway; a gateway that cannot be reached does not stop the others."""
    result = DispatchResult()
    for gateway, setpoints in sorted(batches.items()):
        try:
            record = send(site, gateway, setpoints, lease_s, ISSUER)
        except Exception as exc:  # NotConnected, a publish error: logged, the next run retries
            result.failed[gateway] = str(exc)
            log.error("setpoints for %s/%s not sent: %s", site, gateway, exc)
            continue
        command = getattr(record, "command", None)
        result.commands[gateway] = str(getattr(command, "id", ""))
        result.setpoints += len(setpoints)
    return result
