"""The controller's settings: one pydantic-settings object.

Sources, highest priority first: keyword arguments, environment (``KUAT_CONTROLLER_...``, nested fields with
``__``, e.g. ``KUAT_CONTROLLER_BROKER__PORT=1884``), the optional YAML/TOML file given to `load_settings`, defaults.
"""

from __future__ import annotations

import tomllib
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from controller.alerts.settings import AlertSettings
from controller.planner.settings import PlannerSettings

# secrets that ship in examples and docs; refused when production=true
DEFAULT_SECRETS = frozenset({"", "change-me", "changeme", "secret", "password", "admin", "kuat", "test"})
MIN_PRODUCTION_SECRET_LEN = 16


class EnergySource(StrEnum):
    """Where a kWh came from: the law and the per-kWh mining fee treat each differently."""

    GRID = "grid"
    OWN_GENERATION = "own_generation"
    RENEWABLES = "renewables"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    tls: bool = False
    ca_file: Path | None = None  # CA that signed the broker's certificate (None: the system's CAs)
    cert_file: Path | None = None  # client certificate, when the broker asks for one
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    client_id: str = "kuat-controller"
    keepalive_s: int = Field(30, ge=5)
    persistent_session: bool = True  # the broker queues QoS 1 telemetry while the controller restarts


class InfluxSettings(_Section):
    url: str
    token: str = ""
    org: str = "kuat"
    bucket: str = "kuat"
    batch_size: int = Field(5000, ge=1)
    flush_interval_ms: int = Field(1000, ge=10)
    retry_interval_ms: int = Field(2000, ge=10)
    max_retries: int = Field(5, ge=0)
    max_retry_time_ms: int = Field(180_000, ge=0)


class SiteMeters(_Section):
    """Which energy source feeds which device: a miner takes its own entry, else its PDU's, else the default."""

    default: EnergySource = EnergySource.GRID
    devices: dict[str, EnergySource] = Field(default_factory=dict)  # device id (miner or PDU) -> source


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class ApiKey(_Section):
    name: str
    role: str  # operator / regulator / grid / agent
    key: str
    # what the key reaches beyond its role (serverkit.auth.Scope): e.g. a grid key {"sites": [...], "zones": [...]}
    scope: dict[str, list[str]] = Field(default_factory=dict)


class QuotaSettings(_Section):
    """The quota loop (controller/quota). Intervals that pace work are real seconds; the others are clock seconds."""

    enabled: bool = True
    interval_s: float = Field(5.0, gt=0)  # real seconds between loop runs (also run at once on a new order)
    lease_s: float = Field(60.0, gt=0)  # setpoints hold this long without renewal; the agent then fails safe
    lag_s: float = Field(30.0, ge=0)  # actuation lag: limits starting this soon apply now
    settle_s: float = Field(30.0, ge=0)  # after a change, measured/planned teaches the correction only after this
    straggler_settle_s: float = Field(90.0, ge=0)  # a machine still above its setpoint after this is re-dispatched
    min_on_s: float = Field(600.0, ge=0)
    min_off_s: float = Field(300.0, ge=0)
    max_wakes: int | None = Field(None, ge=1)  # staggered restore: machines woken per dispatch
    max_wake_w: float | None = Field(None, gt=0)
    # energy held back from each hour's purchase: at least this share, more when the measurement is less certain
    # (quota.control.site_power). Raise it where the commercial meter reads above Kuat's measured sum (site
    # losses, loads Kuat does not meter); docs/quota.md "Energy margin".
    energy_margin: float = Field(0.0025, ge=0, le=0.2)
    # take the commercial meter's measured excess over Kuat's sum (controller/money, docs/money.md) as a floor of
    # the margin too, per site, when it is larger than energy_margin
    energy_margin_from_meter: bool = False
    history_hours: float = Field(6.0, gt=0)  # loop points kept in memory
    ledger_period_s: int = Field(60, ge=1, le=3600)  # ledger rows (60: per minute); must divide an hour
    compliance_refresh_s: float = Field(30.0, gt=0)  # real seconds between reads of the registry's violations
    grid_signal: bool = True  # subscribe to kuat/v1/{site}/grid/signal
    # the grid signal's brokers in preference order (the contract's two; empty: the controller's own broker). The
    # site follows the first whose last message is fresh (docs/quota.md "Grid signal")
    grid_brokers: list[BrokerSettings] = Field(default_factory=list)
    grid_future_skew_s: float = Field(30.0, ge=0)  # a message dated further ahead of our clock is refused
    grid_past_skew_s: float = Field(600.0, gt=0)  # a message dated further back is refused

    _meter_margins: dict[str, float] = PrivateAttr(default_factory=dict)

    def margin_for(self, site: str) -> float:
        """The loop's energy-margin floor for `site`: energy_margin, or the meter-derived one when larger."""
        if not self.energy_margin_from_meter:
            return self.energy_margin
        return max(self.energy_margin, self._meter_margins.get(site, 0.0))

    def set_meter_margin(self, site: str, share: float) -> None:
        """Set by controller/money from the meter reconciliation (bounded by the field's own limit, 0.2)."""
        self._meter_margins[site] = min(0.2, max(0.0, share))

    @field_validator("ledger_period_s")
    @classmethod
    def _divides_hour(cls, v: int) -> int:
        if 3600 % v:
            raise ValueError("must divide 3600 (rows roll up into hours)")
        return v


class LeaseSettings(_Section):
    """Active/standby controllers on one PostgreSQL (controller.lease, docs/operations.md). The standby takes over
    within ttl_s + renew_s of the active's death: keep that well under the agents' lease_s + grace_s."""

    enabled: bool = False
    name: str = "controller"  # one active controller per name (per database)
    ttl_s: float = Field(10.0, gt=0)
    renew_s: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _renew_below_ttl(self) -> LeaseSettings:
        if self.renew_s >= self.ttl_s:
            raise ValueError(f"renew_s ({self.renew_s:g}) must be below ttl_s ({self.ttl_s:g})")
        return self


class RegistryLinkSettings(_Section):
    """The link to the national HSC registry (controller/registry_link, docs/national.md).

    `embedded`: the registry runs in this controller, on its database (one DPC on one machine, the demo);
    `remote`: the national registry's DPC API over HTTP at `url`, with the DPC key read from `key_file`."""

    mode: Literal["embedded", "remote"] = "embedded"
    dpc: str = Field(min_length=1, max_length=64, description="this DPC's code in the registry")
    url: str | None = None
    key_file: Path | None = None
    trust_window_h: float = Field(72.0, gt=0, le=24 * 30)  # last-known decisions are trusted this long
    sync_s: float = Field(5.0, gt=0)  # real seconds between outbox drains and feed reads
    feed_page: int = Field(1000, ge=1, le=5000)
    timeout_s: float = Field(10.0, gt=0)
    retry_min_s: float = Field(2.0, gt=0)  # an unavailable registry: retried after this, doubling...
    retry_max_s: float = Field(300.0, gt=0)  # ...up to this
    max_allowance_h: float = Field(72.0, gt=0)  # the longest commissioning allowance an operator may grant

    @model_validator(mode="after")
    def _remote_needs_url_and_key(self) -> RegistryLinkSettings:
        if self.mode == "remote":
            missing = [name for name in ("url", "key_file") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"registry.mode=remote needs {' and '.join(missing)}")
        return self


class NoRegistryLab(_Section):
    """`registry: {mode: none_lab}`: the explicit opt-out for a lab, a test bench or the single-site demo. No registry
    decision is asked for: power rights are NOT enforced, only the in-process registry's violations take a machine's
    power (the site-era behaviour, which fails open). Logged as a warning at every start. Without any `registry:`
    section the controller fails closed instead: no machine has the right to mine (REGULATION.md)."""

    mode: Literal["none_lab"]


def _registry_kind(value: Any) -> str:
    mode = value.get("mode") if isinstance(value, dict) else getattr(value, "mode", None)
    return "lab" if mode == "none_lab" else "link"


RegistrySection = Annotated[Annotated[RegistryLinkSettings, Tag("link")] | Annotated[NoRegistryLab, Tag("lab")],
                            Discriminator(_registry_kind)]


class RequestedAsset(_Section):
    """An asset a pool asked the Committee to publish (seed para 8): valued for a year from the next day."""

    symbol: str = Field(min_length=1, max_length=16)
    name: str
    requested_on: date
    cmc_id: int | None = None
    pegged_to: str | None = Field(None, min_length=3, max_length=3)


class MoneySettings(_Section):
    """The money side (controller/money, docs/money.md). The readings where the law is unclear are settings."""

    enabled: bool = True
    nbk_date: Literal["effective", "determined"] = "effective"  # what the National Bank feed's <date> means
    cmc_day: Literal["same_date", "previous"] = "same_date"  # which CMC UTC day stands for an Astana date
    price_field: Literal["close", "open", "high", "low"] = "close"  # 2024/2026: CMC's end-of-day value
    reading_2023: Literal["price", "literal"] = "price"  # which reading of the missing 2023 formula is the value
    sale_share_period: Literal["month", "quarter", "year"] = "month"
    fee_rate_sets: list[str] = Field(default_factory=list)  # rate sets not adopted (proposals) to apply anyway
    requested_assets: list[RequestedAsset] = Field(default_factory=list)
    pool_fee: float = Field(0.02, ge=0, lt=1)  # expected distribution = hash x reward x (1 - pool fee)
    deviation_tolerance: float = Field(0.10, gt=0, le=10)  # |distributed - expected| / expected beyond: flagged
    # key name -> the BINs it may see (tenant keys until serverkit's Principal.scope lands; docs/money.md)
    licensee_keys: dict[str, list[str]] = Field(default_factory=dict)
    meter_margin_days: int = Field(7, ge=1, le=90)  # hours of the last N days set the suggested energy margin
    meter_margin_percentile: float = Field(0.95, gt=0, le=1)
    readiness_check_s: float = Field(3600.0, gt=0)
    cmc_api_key: str | None = None  # optional fetchers (kuat money fetch); tests never use the network
    cmc_base_url: str = "https://pro-api.coinmarketcap.com"
    nbk_base_url: str = "https://nationalbank.kz/rss/get_rates.cfm"


class ControllerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUAT_CONTROLLER_", env_nested_delimiter="__", extra="forbid")

    production: bool = False
    database_url: str = "sqlite:///./var/kuat.sqlite"
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    sites: list[str] = Field(default_factory=list)  # empty: every site on the broker
    meters: dict[str, SiteMeters] = Field(default_factory=dict)  # site -> meters; absent site: all grid
    influx: InfluxSettings | None = None
    api: ApiSettings = Field(default_factory=ApiSettings)
    api_keys: list[ApiKey] = Field(default_factory=list)
    retention_days: int = Field(5 * 365, ge=1)  # site totals and energy per day: no legal period found, 5 years
    device_minute_retention_days: int = Field(35, ge=1)  # per-device minute rows (100k devices: 144M rows a day)
    rollup_flush_s: float = Field(60.0, gt=0)
    gateway_timeout_s: float = Field(90.0, gt=0)  # no message for this long: offline even without a last will
    device_stale_s: float = Field(120.0, gt=0)  # a device not reported for this long counts as unavailable
    energy_max_gap_s: float = Field(120.0, gt=0)  # longer intervals between samples are not integrated
    sightings_flush_s: float = Field(5.0, gt=0)
    sightings_heartbeat_s: float = Field(300.0, gt=0)  # unchanged devices re-sighted this often (registry last seen)
    compliance_check_s: float = Field(300.0, gt=0)
    ingest_queue_max: int = Field(1000, ge=10)  # messages (a 500-miner batch: ~0.4 MB); beyond, the broker keeps them
    quota: QuotaSettings = Field(default_factory=QuotaSettings)
    money: MoneySettings = Field(default_factory=MoneySettings)
    planner: PlannerSettings = Field(default_factory=PlannerSettings)  # day-ahead bids (controller/planner)
    # the national registry. None (no section): fail closed, no machine may mine (an error line at start);
    # {mode: none_lab}: the lab opt-out, rights not enforced (a warning at every start); docs/national.md
    registry: RegistrySection | None = None
    alerts: AlertSettings = Field(default_factory=AlertSettings)  # alert rules and channels (controller/alerts)
    lease: LeaseSettings = Field(default_factory=LeaseSettings)  # active/standby (controller/lease)

    @field_validator("sites")
    @classmethod
    def _plain_site_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not name or any(c in name for c in "/+#"):
                raise ValueError(f"site name {name!r} must be non-empty and free of '/', '+' and '#'")
        return v

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> ControllerSettings:
        if not self.production:
            return self
        for key in self.api_keys:
            if key.key in DEFAULT_SECRETS or len(key.key) < MIN_PRODUCTION_SECRET_LEN:
                raise ValueError(
                    f"api_keys[{key.name}]: a default or short key (< {MIN_PRODUCTION_SECRET_LEN} chars) "
                    "is refused when production=true"
                )
        if self.broker.username and self.broker.password in DEFAULT_SECRETS:
            raise ValueError("broker.password: a default password is refused when production=true")
        if self.influx and self.influx.token in DEFAULT_SECRETS:
            raise ValueError("influx.token: a default token is refused when production=true")
        return self

    def source_of(self, site: str, device_id: str, pdu_id: str | None = None) -> EnergySource:
        meters = self.meters.get(site)
        if meters is None:
            return EnergySource.GRID
        if device_id in meters.devices:
            return meters.devices[device_id]
        if pdu_id is not None and pdu_id in meters.devices:
            return meters.devices[pdu_id]
        return meters.default


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML or TOML file as a dict; a clear error for anything else."""
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".toml":
        data: Any = tomllib.loads(text)
    elif path.suffix in (".yaml", ".yml"):
        data = yaml.safe_load(text) or {}
    else:
        raise ValueError(f"config file {path}: use .toml, .yaml or .yml")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: the top level must be a mapping")
    return data


class _DictSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def load_settings(path: Path | None = None, **overrides: Any) -> ControllerSettings:
    """Settings from defaults < file < environment < `overrides`."""
    file_data = read_config_file(path) if path else {}

    class _WithFile(ControllerSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _DictSource(settings_cls, file_data))

    loaded = _WithFile(**overrides)
    return ControllerSettings.model_validate(loaded.model_dump())
