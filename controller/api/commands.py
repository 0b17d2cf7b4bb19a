"""/api/v1/commands: send a command to one device through MQTT; its ack shows up in GET /api/v1/commands/{id}.

`CommandOut` is a command as the operator sees it: what was sent, by whom, and the agent's ack once it came.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from controller.api.deps import operate, read_fleet, services
from controller.runtime import Services
from controller.services.commands import NotConnected, UnknownDevice
from kuat.wire import v1
from serverkit.auth import Principal

router = APIRouter(prefix="/api/v1/commands", tags=["commands"])


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(min_length=1)
    kind: v1.CommandKind
    power_w: float | None = Field(None, ge=0, description="set_power_target: watts")
    outlet: int | None = Field(None, ge=1, description="outlet_*: the PDU's outlet number")
    site: str | None = Field(None, description="needed only when the device id exists on several sites")

    @field_validator("power_w")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number of watts")
        return v

    @field_validator("kind")
    @classmethod
    def _single_device(cls, v: v1.CommandKind) -> v1.CommandKind:
        if v == v1.CommandKind.SETPOINTS:
            raise ValueError("setpoint batches come from the quota engine, not from this endpoint")
        return v


class CommandOut(BaseModel):
    id: str
    kind: str
    device_id: str | None
    power_w: float | None
    outlet: int | None
    site: str
    gateway: str
    ts: datetime
    issued_by: str | None
    status: str = Field(description="sent, applied, rejected or failed")
    reason: str | None
    acked_at: datetime | None
    items: list[v1.ItemAck]


@router.post("", status_code=202, response_model=CommandOut)
def send(body: CommandIn, svc: Services = Depends(services), who: Principal = Depends(operate)) -> dict[str, Any]:
    try:
        record = svc.commands.send(body.kind, body.device_id, body.power_w, body.outlet, body.site, who.actor)
    except ValidationError as exc:
        raise HTTPException(422, [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                                  for e in exc.errors()]) from None  # fmt: skip
    except UnknownDevice as exc:
        raise HTTPException(404, str(exc)) from None
    except (NotConnected, ConnectionError) as exc:
        raise HTTPException(503, str(exc)) from None
    return record.view()


@router.get("/{command_id}", dependencies=[Depends(read_fleet)], response_model=CommandOut)
def status(command_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    record = svc.commands.get(command_id)
    if record is None:
        raise HTTPException(404, f"no command {command_id!r} (unknown, or older than the kept history)")
    return record.view()
