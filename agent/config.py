"""The gateway agent's configuration: a YAML file, overridden by environment variables.

Environment variables start with ``KUAT_AGENT_`` and use ``__`` for nesting, e.g.
``KUAT_AGENT_BROKER__PASSWORD=...`` overrides ``broker.password`` from the file (so secrets need not live in it).
An example with every option: agent/examples/agent.yaml (documented in docs/agent.md).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

# passwords that must never reach a production broker
PLACEHOLDER_PASSWORDS = frozenset({"", "changeme", "change-me", "change_me", "password", "kuat", "secret", "admin"})


class ConfigError(ValueError):
    """The configuration file or environment is unusable; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsConfig(_Strict):
    ca: Path | None = None  # CA bundle that signed the broker's certificate (None: the system store)
    cert: Path | None = None  # client certificate, for brokers that authenticate clients by certificate
    key: Path | None = None
    insecure: bool = False  # skip hostname verification: for a lab only; refused in production

    @model_validator(mode="after")
    def _cert_needs_key(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls.cert and tls.key go together")
        return self


class BrokerEndpoint(_Strict):
    host: str
    port: int = Field(1883, ge=1, le=65535)


class BrokerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    # further brokers of the site, in order (the same credentials and TLS): after `fallback_after` failed connection
    # attempts the agent tries the next one, round the list (docs/operations.md, broker topology)
    fallbacks: list[BrokerEndpoint] = Field(default_factory=list)
    fallback_after: int = Field(2, ge=1)
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    tls: TlsConfig | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    client_id: str | None = None  # default: kuat-<site>-<gateway>


class PollConfig(_Strict):
    interval_s: float = Field(10.0, gt=0)
    concurrency: int = Field(64, ge=1, le=4096)  # devices read at the same time
    device_timeout_s: float = Field(5.0, gt=0)  # one device's read or command may take this long
    pdu_timeout_s: float = Field(10.0, gt=0)  # a PDU read walks several SNMP tables: it gets longer


class BufferConfig(_Strict):
    path: Path = Path("/var/lib/kuat/agent-buffer.sqlite")
    max_rows: int = Field(8640, ge=1)  # telemetry batches kept while the broker is away (a day at 10 s)
    max_mb: float = Field(512.0, gt=0)  # and at most this much (compressed) payload
    command_memory: int = Field(10000, ge=100)  # command ids remembered for idempotency
    reserve_kb: int = Field(1024, ge=0)  # room kept next to the buffer for a full disk (agent.buffer); 0: none


class FailsafeConfig(_Strict):
    mode: Literal["sleep_unprotected", "cap_w"] = "sleep_unprotected"
    cap_w: float | None = Field(None, ge=0)  # cap_w mode: total watts for this gateway's miners
    grace_s: float = Field(5.0, ge=0)  # after the lease expires, wait this long before acting
    outlet_off_fallback: bool = True  # a miner that cannot sleep is switched off at its outlet (if mapped)
    retry_s: float = Field(10.0, gt=0)  # devices that did not reach the safe state are retried this often

    @model_validator(mode="after")
    def _cap_needs_watts(self) -> FailsafeConfig:
        if self.mode == "cap_w" and self.cap_w is None:
            raise ValueError("failsafe mode cap_w needs cap_w (total watts)")
        return self


class MetricsConfig(_Strict):
    """Where `/healthz` and `/metrics` are served (loopback by default; set host to expose them)."""

    host: str = "127.0.0.1"
    port: int = Field(9101, ge=1, le=65535)


class OutletConfig(_Strict):
    pdu: str  # the PDU's device id (pdus[].id)
    outlet: int = Field(ge=1)


class PlacementConfig(_Strict):
    """Where the miner sits (the site's own names): sent with every sample, shown in the dashboard's rack view."""

    hall: str | None = Field(None, max_length=64)
    rack: str | None = Field(None, max_length=64)
    slot: int | None = Field(None, ge=1)


class MinerCredentials(_Strict):
    username: str | None = None  # Antminer web API (digest auth), pyasic logins
    password: str | None = None  # default: the firmware's factory password


class MinerConfig(_Strict):
    ip: str
    id: str | None = None  # default: the MAC once read, else ip-<address>
    driver: str = "auto"
    credentials: MinerCredentials = Field(default_factory=MinerCredentials)
    protected: bool = False  # the failsafe leaves it alone (e.g. a customer with a firm contract)
    outlet: OutletConfig | None = None
    placement: PlacementConfig | None = None
    rpc_port: int | None = Field(None, ge=1, le=65535)  # overrides 4028 + port_offset
    web_port: int | None = Field(None, ge=1, le=65535)  # overrides 80 + port_offset

    @field_validator("ip")
    @classmethod
    def _ip(cls, v: str) -> str:
        return _valid_ip(v)


class SnmpV3Config(_Strict):
    user: str
    auth_protocol: Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"] = "sha"
    auth_key: str | None = None  # no key: noAuth
    priv_protocol: Literal["des", "3des", "aes", "aes128", "aes192", "aes256"] = "aes"
    priv_key: str | None = None  # no key: noPriv


class PduConfig(_Strict):
    ip: str
    id: str | None = None  # default: pdu-<address>
    family: str = "auto"
    community: str = "public"
    write_community: str | None = None
    v3: SnmpV3Config | None = None
    port: int | None = Field(None, ge=1, le=65535)  # overrides 161 + port_offset

    @field_validator("ip")
    @classmethod
    def _ip(cls, v: str) -> str:
        return _valid_ip(v)

    @property
    def device_id(self) -> str:
        return self.id or f"pdu-{self.ip}"


class DevicesConfig(_Strict):
    miners: list[MinerConfig] = Field(default_factory=list)
    pdus: list[PduConfig] = Field(default_factory=list)


def _valid_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP address") from exc


class AgentConfig(BaseSettings):
    """Everything one gateway agent needs. Env (KUAT_AGENT_*) wins over the file."""

    model_config = SettingsConfigDict(env_prefix="KUAT_AGENT_", env_nested_delimiter="__", extra="forbid")

    site: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    gateway: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    production: bool = False
    broker: BrokerConfig = Field(default_factory=lambda: BrokerConfig())
    poll: PollConfig = Field(default_factory=lambda: PollConfig())
    buffer: BufferConfig = Field(default_factory=lambda: BufferConfig())
    failsafe: FailsafeConfig = Field(default_factory=lambda: FailsafeConfig())
    devices: DevicesConfig = Field(default_factory=DevicesConfig)
    metrics: MetricsConfig | None = None  # health and Prometheus metrics endpoint; off unless configured
    port_offset: int = Field(0, ge=0, le=60000)  # simulated sites: miners on 4028+N / 80+N, PDUs on 161+N

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)  # environment overrides the file

    @model_validator(mode="after")
    def _production_rules(self) -> AgentConfig:
        if not self.production:
            return self
        if self.broker.password is None or self.broker.password.strip().lower() in PLACEHOLDER_PASSWORDS:
            raise ValueError("production: true needs a real broker.password (the default/placeholder is refused)")
        if self.broker.tls is not None and self.broker.tls.insecure:
            raise ValueError("production: true refuses broker.tls.insecure")
        return self

    @model_validator(mode="after")
    def _unique_devices_and_outlets(self) -> AgentConfig:
        _check_unique("miner ip", [m.ip for m in self.devices.miners])
        _check_unique("pdu ip", [p.ip for p in self.devices.pdus])
        ids = [m.id for m in self.devices.miners if m.id] + [p.device_id for p in self.devices.pdus]
        _check_unique("device id", ids)
        pdu_ids = {p.device_id for p in self.devices.pdus}
        taken: dict[tuple[str, int], str] = {}
        for m in self.devices.miners:
            if m.outlet is None:
                continue
            if m.outlet.pdu not in pdu_ids:
                raise ValueError(f"miner {m.ip}: outlet names unknown pdu {m.outlet.pdu!r} (known: {sorted(pdu_ids)})")
            key = (m.outlet.pdu, m.outlet.outlet)
            if key in taken:
                raise ValueError(f"miners {taken[key]} and {m.ip} both on {m.outlet.pdu} outlet {m.outlet.outlet}")
            taken[key] = m.ip
        return self

    def client_id(self) -> str:
        return self.broker.client_id or f"kuat-{self.site}-{self.gateway}"


def _check_unique(what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"duplicate {what} {v!r}")
        seen.add(v)


def load_config(path: Path | str, **overrides: Any) -> AgentConfig:
    """Read a YAML config file; raise ConfigError with the file name and the offending fields."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (site:, gateway:, broker:, devices: ...)")
    data.update(overrides)
    return config_from_dict(data, source=str(path))


def config_from_dict(data: dict[str, Any], source: str = "config") -> AgentConfig:
    try:
        return AgentConfig(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from exc
