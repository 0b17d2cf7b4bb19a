"""/api/v1/commands: send a command to one device through MQTT; its ack shows up in GET /api/v1/commands/{id}.

`CommandOut` is a command as the operator sees it: what was sent, by whom, and the agent's ack once it came.

/api/v1/commands/bulk: one command kind to many machines (controller.services.bulk); GET .../bulk/{batch_id} gives
each machine's outcome (pending, acked, failed with the reason).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from controller.api.deps import operate, read_fleet, services
from controller.runtime import Services
from controller.services.bulk import BULK_KINDS, BulkBatch, BulkCommands
from controller.services.commands import NotConnected, UnknownDevice
from kuat.wire import v1
from serverkit.auth import Principal
from serverkit.errors import NotFound

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


# ------------------------------------------------------------------ bulk


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_ids: list[str] = Field(min_length=1, max_length=5000, description="the machines, each once")
    kind: v1.CommandKind = Field(description="sleep, wake, set_power_target, reboot or outlet_cycle")
    power_w: float | None = Field(None, ge=0, allow_inf_nan=False, description="set_power_target: watts")

    @field_validator("kind")
    @classmethod
    def _bulk_kind(cls, v: v1.CommandKind) -> v1.CommandKind:
        if v not in BULK_KINDS:
            raise ValueError(f"not a bulk action; one of {', '.join(sorted(k.value for k in BULK_KINDS))}")
        return v

    @field_validator("device_ids")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({d for d in v if v.count(d) > 1})
        if dupes:
            raise ValueError(f"each machine once (repeated: {', '.join(dupes[:5])})")
        if any(not d for d in v):
            raise ValueError("an empty device id")
        return v

    @model_validator(mode="after")
    def _power(self) -> BulkIn:
        if self.kind == v1.CommandKind.SET_POWER_TARGET and self.power_w is None:
            raise ValueError("set_power_target needs power_w")
        return self


class BulkItemOut(BaseModel):
    device_id: str
    command_id: str | None
    outcome: str = Field(description="pending (sent, no ack yet) / acked / failed")
    reason: str | None
    acked_at: datetime | None


class BulkOut(BaseModel):
    batch_id: str
    kind: str
    power_w: float | None
    issued_by: str
    created_at: datetime
    total: int
    pending: int
    acked: int
    failed: int
    items: list[BulkItemOut]


def bulk_of(request: Request) -> BulkCommands:
    """One batch book per app, over the app's command service."""
    book: BulkCommands | None = getattr(request.app.state, "bulk_commands", None)
    if book is None:
        svc: Services = request.app.state.services
        book = request.app.state.bulk_commands = BulkCommands(svc.commands)
    return book


def _bulk_out(book: BulkCommands, batch: BulkBatch) -> BulkOut:
    items = [BulkItemOut(device_id=o.device_id, command_id=o.command_id, outcome=o.outcome, reason=o.reason,
                         acked_at=o.acked_at) for o in book.outcomes(batch)]  # fmt: skip
    count = {k: sum(1 for i in items if i.outcome == k) for k in ("pending", "acked", "failed")}
    return BulkOut(batch_id=batch.id, kind=batch.kind.value, power_w=batch.power_w, issued_by=batch.issued_by,
                   created_at=batch.created_at, total=len(items), items=items, **count)  # fmt: skip


@router.post("/bulk", status_code=202, response_model=BulkOut)
def send_bulk(body: BulkIn, book: BulkCommands = Depends(bulk_of), who: Principal = Depends(operate)) -> BulkOut:
    """One command per machine; the batch id gives every machine's outcome as the agents ack."""
    return _bulk_out(book, book.send(body.kind, body.device_ids, body.power_w, who.actor))


@router.get("/bulk/{batch_id}", response_model=BulkOut, dependencies=[Depends(read_fleet)])
def get_bulk(batch_id: str, book: BulkCommands = Depends(bulk_of)) -> BulkOut:
    batch = book.get(batch_id)
    if batch is None:
        raise NotFound("bulk batch", batch_id)
    return _bulk_out(book, batch)
