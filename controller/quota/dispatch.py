"""Dispatch: the allocator's plan, cut into one setpoint batch per gateway and published with a lease.

Every loop run sends every machine's setpoint again: that renews the agents' leases (the agent applies only what
changed, and re-sends to machines that drifted). If the controller dies, the leases run out and each agent puts its
site in its configured safe state by itself (agent.failsafe).

Setpoints travel as `(mode, power_w)` pairs and are serialised straight to the wire's JSON (`kuat.wire.v1.Setpoint`
fields): a validated pydantic model per machine costs ~10 us, i.e. a second for 100,000 machines. A board option
is the pair `("boards:<k>", planned W)`, sent as `run` with `boards_on` k (the key keeps the dead band and the
held-power rules working on pairs). The mapping from the plan is the engine's
(`quota.allocate.Allocation.setpoints`); `tests/controller/test_quota_loop.py` checks that both give the same
setpoints.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field

import numpy as np

from kuat.wire import v1
from quota.allocate import Allocation, Mode
from quota.fleet import FleetArrays

log = logging.getLogger(__name__)

Wire = tuple[str, float | None]  # (v1.SetpointMode value, power_w)
# (site, gateway, JSON array of setpoints, lease_s, issued_by, epoch=...) -> a record with .command.id
# (CommandService.send_setpoints_json)
SendJson = Callable[..., object]
ISSUER = "quota-loop"
RUN, TARGET, SLEEP, OFF = (m.value for m in (v1.SetpointMode.RUN, v1.SetpointMode.POWER_TARGET,
                                              v1.SetpointMode.SLEEP, v1.SetpointMode.OUTLET_OFF))  # fmt: skip
MODE_OF = {RUN: Mode.RUN, TARGET: Mode.POWER_TARGET, SLEEP: Mode.SLEEP, OFF: Mode.OUTLET_OFF}  # wire -> engine
BOARDS = "boards:"  # + the number of boards on: the controller's key for a board option (not a wire mode)


def mode_of(key: str) -> Mode:
    """The engine's mode of a sent pair's key."""
    return Mode.BOARDS if key.startswith(BOARDS) else MODE_OF[key]


@dataclass
class DispatchResult:
    commands: dict[str, str] = field(default_factory=dict)  # gateway -> command id
    failed: dict[str, str] = field(default_factory=dict)  # gateway -> why
    setpoints: int = 0


def wire_setpoints(plan: Allocation, fleet: FleetArrays) -> list[Wire]:
    """The plan as wire setpoints, fleet order: full -> run; a target or a preset -> power_target with its wall
    power (firmware without continuous targets selects its highest preset at or below it); idle -> sleep or
    outlet_off; boards -> run with boards_on."""
    modes = plan.mode.astype(np.int64).tolist()
    watts = np.round(plan.power_w, 1).tolist()
    boards = plan.boards_on.tolist() if len(plan.boards_on) == len(modes) else [0] * len(modes)
    out: list[Wire] = []
    for m, w, b in zip(modes, watts, boards, strict=True):
        if m == Mode.BOARDS:
            out.append((f"{BOARDS}{b}", float(w)))
        elif m == Mode.RUN:
            out.append((RUN, None))
        elif m in (Mode.POWER_TARGET, Mode.PRESET):
            out.append((TARGET, float(w)))
        elif m == Mode.SLEEP:
            out.append((SLEEP, None))
        else:
            out.append((OFF, None))
    return out


def _item(quoted_id: str, wire: Wire, reapply: bool = False) -> str:
    mode, watts = wire
    extra = ',"reapply":true' if reapply else ""
    if mode.startswith(BOARDS):
        return f'{{"device_id":{quoted_id},"mode":"{RUN}","boards_on":{int(mode[len(BOARDS):])}{extra}}}'
    if watts is None:
        return f'{{"device_id":{quoted_id},"mode":"{mode}"{extra}}}'
    return f'{{"device_id":{quoted_id},"mode":"{mode}","power_w":{watts!r}{extra}}}'


class Batcher:
    """Per-gateway JSON batches; device ids are quoted once and remembered."""

    def __init__(self) -> None:
        self._quoted: dict[str, str] = {}

    def batches(self, ids: Sequence[str], wires: Sequence[Wire], gateway_of: Mapping[str, str],
                reapply: Set[str] = frozenset()) -> dict[str, bytes]:
        """`reapply`: devices the agent must apply again even if it believes it did (they did not follow)."""
        parts: dict[str, list[str]] = defaultdict(list)
        quoted = self._quoted
        for device, wire in zip(ids, wires, strict=True):
            gw = gateway_of.get(device)
            if gw is None:
                continue
            q = quoted.get(device)
            if q is None:
                q = quoted[device] = json.dumps(device)
            parts[gw].append(_item(q, wire, device in reapply))
        return {gw: ("[" + ",".join(items) + "]").encode() for gw, items in parts.items()}


def send_batches(send: SendJson, site: str, batches: Mapping[str, bytes], lease_s: float,
                 epoch: int | None = None, still_held: Callable[[int], bool] | None = None) -> DispatchResult:
    """Publish one setpoint batch per gateway; a gateway that cannot be reached does not stop the others. Under
    the active/standby lease every batch carries `epoch`, and `still_held(epoch)` is asked before each publish: a
    controller that lost the lease stops at once (the rest are reported failed)."""
    result = DispatchResult()
    for gateway, payload in sorted(batches.items()):
        if epoch is not None and still_held is not None and not still_held(epoch):
            result.failed[gateway] = f"lease epoch {epoch} lost: not sent"
            continue
        try:
            record = send(site, gateway, payload, lease_s, ISSUER, epoch=epoch)
        except Exception as exc:  # NotConnected, a publish error: logged, the next run retries
            result.failed[gateway] = str(exc)
            log.error("setpoints for %s/%s not sent: %s", site, gateway, exc)
            continue
        command = getattr(record, "command", None)
        result.commands[gateway] = str(getattr(command, "id", ""))
        result.setpoints += payload.count(b'"device_id"')
    return result
