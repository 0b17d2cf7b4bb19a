"""Kuat wire schema, version 1: MQTT topics and JSON messages between gateway agents and the controller.

Topics (all under ``kuat/v1/{site}/``):

=====================================  ========  ======  =============================================
topic                                  QoS       retain  payload
=====================================  ========  ======  =============================================
``gw/{gateway}/telemetry``             1         no      `TelemetryBatch` (one per gateway per cycle)
``gw/{gateway}/state``                 1         yes     `GatewayState` (also the MQTT last will)
``gw/{gateway}/cmd``                   1         no      `Command` (controller -> agent)
``gw/{gateway}/ack``                   1         no      `Ack` (agent -> controller)
``grid/signal``                        1         no      `GridSignal` (grid operator -> controller)
=====================================  ========  ======  =============================================

Every message carries ``schema`` (``kuat.<kind>/1``) so a receiver can reject what it does not understand.
Device ids are chosen by the agent and stable: the MAC address (lower case, colons) when known, otherwise
``ip-<address>`` for miners and ``pdu-<address>`` for PDUs; config may set them explicitly.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

VERSION = 1
TOPIC_ROOT = "kuat/v1"


def topic(site: str, gateway: str, kind: Literal["telemetry", "state", "cmd", "ack"]) -> str:
    return f"{TOPIC_ROOT}/{site}/gw/{gateway}/{kind}"


def grid_signal_topic(site: str) -> str:
    return f"{TOPIC_ROOT}/{site}/grid/signal"


def now() -> datetime:
    return datetime.now(UTC)


class _Msg(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False, use_enum_values=False)


# ---------------------------------------------------------------- telemetry


class PowerSource(StrEnum):
    REPORTED = "reported"  # the firmware reported it (Whatsminer, LuxOS, Braiins, MSKminer)
    PDU = "pdu"  # measured on the metered PDU outlet the miner sits on
    ESTIMATED = "estimated"  # hash rate x the model's J/TH; nothing measured it
    NONE = "none"  # no figure at all (offline and unmetered)


class MinerState(StrEnum):
    MINING = "mining"
    SLEEPING = "sleeping"
    DEGRADED = "degraded"  # hashing, but a board is down, or hash rate far below nominal
    REBOOTING = "rebooting"
    OFFLINE = "offline"


class Capabilities(_Msg):
    power_target: bool = False
    power_min_w: float | None = None
    power_max_w: float | None = None
    presets: list[str] = Field(default_factory=list)
    sleep: bool = False
    reboot: bool = True
    power_target_reboots: bool = False  # Whatsminer: a new power limit reboots the miner
    # single hash boards can be switched off and on (Braiins OS); reported only where a simulator test verified it
    boards: bool = False


class Pool(_Msg):
    url: str
    user: str = ""
    status: str = ""  # as the firmware says it: Alive, Dead, ...
    active: bool = False


class Board(_Msg):
    index: int
    hashrate_ths: float | None = None
    chips: int | None = None
    expected_chips: int | None = None
    temp_c: float | None = None
    chip_temp_c: float | None = None
    ok: bool = True
    enabled: bool = True  # False: switched off on purpose (Braiins OS board control), not a fault


class OutletRef(_Msg):
    pdu: str  # PDU device id
    outlet: int  # 1-based outlet number as the PDU numbers it


class Placement(_Msg):
    """Where a machine sits: hall, rack and slot as the site numbers them (from the gateway's config)."""

    hall: str | None = None
    rack: str | None = None
    slot: int | None = None


class MinerSample(_Msg):
    device_id: str
    ip: str
    available: bool
    state: MinerState
    make: str | None = None
    model: str | None = None
    firmware: str | None = None  # firmware family and version, e.g. "bmminer 1.0.0", "LuxOS 2024.5.1"
    serial: str | None = None
    mac: str | None = None
    hostname: str | None = None
    hashrate_ths: float | None = None
    nominal_ths: float | None = None
    power_w: float | None = None
    power_source: PowerSource = PowerSource.NONE
    reported_power_w: float | None = None  # the firmware's own figure, kept even when the PDU figure wins
    power_limit_w: float | None = None
    temp_c: float | None = None  # hottest board
    fans_rpm: list[int] = Field(default_factory=list)
    boards: list[Board] = Field(default_factory=list)
    pools: list[Pool] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    outlet: OutletRef | None = None
    uptime_s: int | None = None
    placement: Placement | None = None  # additive (older agents omit it): hall/rack/slot from the agent's config


class OutletState(StrEnum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


class OutletSample(_Msg):
    index: int
    name: str | None = None
    state: OutletState = OutletState.UNKNOWN
    power_w: float | None = None
    current_a: float | None = None
    energy_kwh: float | None = None
    switchable: bool = True


class PduPowerSource(StrEnum):
    """Where a PDU's `power_w` comes from, when the PDU gives no total of its own."""

    TOTAL = "total"  # the PDU's own total (unit, device or inlet active power)
    PHASES = "phases"  # the sum of its per-phase / per-line / per-infeed / per-cord active power
    CURRENT_VOLTAGE = "current_voltage"  # the sum of line current x line voltage: apparent power, >= active power
    OUTLETS = "outlets"  # the sum of its metered outlets (unmetered loads on it are missed)


class PduSample(_Msg):
    device_id: str
    ip: str
    available: bool
    family: str | None = None  # "apc_rpdu2", "raritan_px2", "sentry4", ...
    model: str | None = None
    serial: str | None = None
    power_w: float | None = None  # inlet / total active power
    power_source: PduPowerSource | None = None  # where power_w comes from (None: no power reading)
    energy_kwh: float | None = None
    outlets: list[OutletSample] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


class LeaseStatus(_Msg):
    """The agent's view of the controller's setpoint lease."""

    batch_id: str | None = None
    expires_at: datetime | None = None
    expired: bool = False
    failsafe_active: bool = False
    failsafe_since: datetime | None = None


class TelemetryBatch(_Msg):
    schema_: Literal["kuat.telemetry/1"] = Field("kuat.telemetry/1", alias="schema")
    site: str
    gateway: str
    seq: int  # monotonic per gateway, survives restarts (persisted by the agent)
    ts: datetime  # end of the poll cycle
    historical: bool = False  # replayed from the store-and-forward buffer: never overwrites live state
    cycle_s: float | None = None  # how long the poll cycle took
    miners: list[MinerSample] = Field(default_factory=list)
    pdus: list[PduSample] = Field(default_factory=list)
    lease: LeaseStatus | None = None

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class GatewayState(_Msg):
    schema_: Literal["kuat.state/1"] = Field("kuat.state/1", alias="schema")
    gateway: str
    online: bool
    ts: datetime
    agent_version: str | None = None
    devices: int | None = None

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


# ---------------------------------------------------------------- commands


class CommandKind(StrEnum):
    SET_POWER_TARGET = "set_power_target"
    SLEEP = "sleep"
    WAKE = "wake"
    REBOOT = "reboot"
    OUTLET_ON = "outlet_on"
    OUTLET_OFF = "outlet_off"
    OUTLET_CYCLE = "outlet_cycle"
    SETPOINTS = "setpoints"  # fleet setpoint batch, with a lease


class SetpointMode(StrEnum):
    RUN = "run"  # mine at full (or at power_w if given and supported)
    POWER_TARGET = "power_target"
    SLEEP = "sleep"
    OUTLET_OFF = "outlet_off"


class Setpoint(_Msg):
    device_id: str
    mode: SetpointMode
    power_w: float | None = None
    # apply even if the agent believes it already did: the controller measured that the machine did not follow
    reapply: bool = False
    # hash on this many boards, the others switched off (firmware with `Capabilities.boards`: Braiins OS); None:
    # every board on. Sent with `run` (the boards at full). Older agents ignore it and run the machine at full
    boards_on: int | None = Field(None, ge=1, le=64)

    @model_validator(mode="after")
    def _power_needed(self) -> Setpoint:
        if self.mode == SetpointMode.POWER_TARGET and self.power_w is None:
            raise ValueError("power_target setpoint needs power_w")
        if self.power_w is not None and (not math.isfinite(self.power_w) or self.power_w < 0):
            raise ValueError("power_w must be a finite, non-negative number of watts")
        if self.boards_on is not None and self.mode in (SetpointMode.SLEEP, SetpointMode.OUTLET_OFF):
            raise ValueError(f"boards_on is for a running machine, not with mode {self.mode.value}")
        return self


class Command(_Msg):
    schema_: Literal["kuat.command/1"] = Field("kuat.command/1", alias="schema")
    id: Annotated[str, Field(min_length=1, max_length=128)]  # idempotency key: a repeated id is not re-applied
    kind: CommandKind
    ts: datetime = Field(default_factory=now)
    device_id: str | None = None  # single-device commands
    power_w: float | None = None  # set_power_target
    outlet: int | None = None  # outlet_*: with device_id = the PDU's id; or omit and name the miner
    setpoints: list[Setpoint] = Field(default_factory=list)  # kind = setpoints
    lease_s: float | None = None  # setpoints: how long they hold without renewal
    issued_by: str | None = None
    # setpoints from a controller holding the active/standby lease: its epoch (grows on each takeover). An agent
    # ignores a batch older than the newest epoch it has seen (a controller that lost the lease cannot steer)
    epoch: int | None = Field(None, ge=0)

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    @field_validator("power_w")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ValueError("power_w must be a finite, non-negative number of watts")
        return v

    @model_validator(mode="after")
    def _shape(self) -> Command:
        if self.kind == CommandKind.SETPOINTS:
            if self.lease_s is None or self.lease_s <= 0:
                raise ValueError("setpoints need a positive lease_s")
        elif self.device_id is None:
            raise ValueError(f"{self.kind.value} needs device_id")
        if self.kind == CommandKind.SET_POWER_TARGET and self.power_w is None:
            raise ValueError("set_power_target needs power_w")
        return self


class AckStatus(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"  # refused before touching the device (unsupported, unknown device, bad value)
    FAILED = "failed"  # tried, and the device did not do it


class ItemAck(_Msg):
    device_id: str
    status: AckStatus
    reason: str | None = None


class Ack(_Msg):
    schema_: Literal["kuat.ack/1"] = Field("kuat.ack/1", alias="schema")
    command_id: str
    gateway: str
    status: AckStatus  # for a batch: applied only if every item was; else the worst item status
    reason: str | None = None
    ts: datetime = Field(default_factory=now)
    items: list[ItemAck] = Field(default_factory=list)
    duplicate: bool = False  # this id was seen before; the stored ack is repeated, nothing re-applied

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


# ---------------------------------------------------------------- grid signal


class GridSignal(_Msg):
    """Live grid target, republished every N seconds by the grid side (percent of the contract, or MW)."""

    schema_: Literal["kuat.grid/1"] = Field("kuat.grid/1", alias="schema")
    target_pct: float | None = Field(None, ge=0, le=100)
    target_mw: float | None = Field(None, ge=0)
    ts: datetime = Field(default_factory=now)
    reference: str | None = None

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    @model_validator(mode="after")
    def _one_target(self) -> GridSignal:
        if (self.target_pct is None) == (self.target_mw is None):
            raise ValueError("give exactly one of target_pct or target_mw")
        return self


def dumps(msg: BaseModel) -> bytes:
    """Serialise a wire message (by alias, so `schema` keeps its name)."""
    return msg.model_dump_json(by_alias=True, exclude_none=True).encode()
