"""Site files: halls, racks, PDUs and their outlets, and the miner on each outlet.

A site file is TOML or YAML. Miners can be listed one by one (`[[miners]]`) or generated per rack
(`[[racks]]` with `miners = [{model=..., count=N}]`); generated ones get deterministic serials, MACs and
addresses so the same file always makes the same site. Addresses: miners 127.1.<rack>.<slot>, PDUs
127.2.<rack>.<n> (all loopback, so a scan of 127.1.0.0/16 finds the miners as it would on a rack network).
"""

from __future__ import annotations

import hashlib
import ipaddress
import tomllib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kuat.catalog import MODELS
from sim.physics import Fault

Firmware = Literal["bmminer", "luxos", "btminer", "btminer3", "avalon", "braiins"]
PduFamily = Literal["apc_rpdu2", "raritan_px2", "sentry4"]

FIRMWARE_MAKES: dict[str, set[str]] = {
    "bmminer": {"Antminer"},
    "luxos": {"Antminer"},
    "btminer": {"Whatsminer"},
    "btminer3": {"Whatsminer"},
    "avalon": {"Avalon"},
    "braiins": {"Antminer"},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteInfo(_Strict):
    name: str = "sim-site"
    ambient_c: float = 25.0
    gateways: list[str] = Field(default_factory=lambda: ["gw1"])
    miner_net: str = "127.1"  # first two octets of generated miner addresses (127.<n>: loopback only)
    pdu_net: str = "127.2"

    @field_validator("miner_net", "pdu_net")
    @classmethod
    def _loopback_prefix(cls, v: str) -> str:
        parts = v.split(".")
        if len(parts) != 2 or parts[0] != "127" or not parts[1].isdigit() or not 0 <= int(parts[1]) <= 255:
            raise ValueError("must look like '127.N' (loopback only)")
        return v


class MinerDef(_Strict):
    model: str
    firmware: Firmware
    serial: str | None = None
    mac: str | None = None
    ip: str | None = None
    hostname: str | None = None
    pools: list[str] = Field(default_factory=lambda: ["stratum+tcp://pool.kz-accredited.example:3333"])
    worker: str | None = None
    owner: str = "host"
    hall: str = "H1"
    rack: str | None = None
    slot: int | None = None
    pdu: str | None = None
    outlet: int | None = None
    gateway: str | None = None
    faults: list[Fault] = Field(default_factory=list)
    web_password: str = "root"  # stock Antminer digest auth
    api_password: str = "admin"  # Whatsminer write password (API v3 firmware: the `super` account's, "super")

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v not in MODELS:
            raise ValueError(f"unknown model {v!r}; known: {', '.join(sorted(MODELS))}")
        return v

    @model_validator(mode="after")
    def _firmware_fits(self) -> MinerDef:
        make = MODELS[self.model].make
        if make not in FIRMWARE_MAKES[self.firmware]:
            raise ValueError(f"firmware {self.firmware} does not run on a {make} {self.model}")
        if self.firmware == "btminer3" and "api_password" not in self.model_fields_set:
            self.api_password = "super"  # API v3's factory password of the `super` account
        return self


class PduDef(_Strict):
    id: str
    family: PduFamily
    outlets: int = 24
    ip: str | None = None
    hall: str = "H1"
    rack: str | None = None
    community: str = "public"
    write_community: str = "private"
    serial: str | None = None
    faults: list[Literal["offline"]] = Field(default_factory=list)


class MinerGroup(_Strict):
    model: str
    firmware: Firmware
    count: int = Field(ge=1)
    owner: str = "host"
    pools: list[str] | None = None
    faults: list[Fault] = Field(default_factory=list)


class RackDef(_Strict):
    name: str
    hall: str = "H1"
    gateway: str | None = None
    pdus: list[PduFamily] = Field(default_factory=lambda: list[PduFamily](["apc_rpdu2"]))
    outlets_per_pdu: int = 24
    miners: list[MinerGroup] = Field(default_factory=list)


class SiteFile(_Strict):
    site: SiteInfo = Field(default_factory=SiteInfo)
    pdus: list[PduDef] = Field(default_factory=list)
    miners: list[MinerDef] = Field(default_factory=list)
    racks: list[RackDef] = Field(default_factory=list)


def _det(seed: str, n: int) -> bytes:
    return hashlib.sha256(seed.encode()).digest()[:n]


def _serial(make: str, seed: str) -> str:
    h = _det(seed, 8).hex().upper()
    if make == "Whatsminer":
        return f"HTM3{h[:4]}R40{h[4:12]}"
    if make == "Avalon":
        return f"AV{h[:14]}"
    return f"JYZZ{h[:4]}BJ{h[4:14]}"  # Bitmain-style


def _mac(seed: str, make: str) -> str:
    oui = {"Antminer": "02:bc:a1", "Whatsminer": "c6:07:10", "Avalon": "b4:a2:eb"}.get(make, "02:00:00")
    tail = _det("mac" + seed, 3)
    return oui + ":" + ":".join(f"{b:02x}" for b in tail)


def expand(site: SiteFile) -> SiteFile:
    """Turn rack groups into explicit PDUs and miners with addresses, serials and outlets; validate the map."""
    pdus = list(site.pdus)
    miners = list(site.miners)
    gateways = site.site.gateways
    for r_idx, rack in enumerate(site.racks, start=1):
        rack_pdus: list[PduDef] = []
        for p_idx, fam in enumerate(rack.pdus, start=1):
            pdu = PduDef(
                id=f"pdu-{rack.name.lower()}-{p_idx}",
                family=fam,
                outlets=rack.outlets_per_pdu,
                ip=f"{site.site.pdu_net}.{r_idx}.{p_idx}",
                hall=rack.hall,
                rack=rack.name,
                serial=_det(f"{rack.name}/{p_idx}", 5).hex().upper(),
            )
            rack_pdus.append(pdu)
        pdus.extend(rack_pdus)
        capacity = len(rack_pdus) * rack.outlets_per_pdu
        slot = 0
        gw = rack.gateway or gateways[(r_idx - 1) % len(gateways)]
        for group in rack.miners:
            for _ in range(group.count):
                slot += 1
                if slot > capacity:
                    raise ValueError(f"rack {rack.name}: {slot} miners but only {capacity} outlets")
                seed = f"{site.site.name}/{rack.name}/{slot}"
                make = MODELS[group.model].make
                pdu = rack_pdus[(slot - 1) // rack.outlets_per_pdu]
                kw = {"pools": group.pools} if group.pools else {}
                miners.append(
                    MinerDef(
                        model=group.model,
                        firmware=group.firmware,
                        serial=_serial(make, seed),
                        mac=_mac(seed, make),
                        ip=f"{site.site.miner_net}.{r_idx}.{slot}",
                        hostname=f"{rack.name.lower()}-{slot:02d}",
                        owner=group.owner,
                        hall=rack.hall,
                        rack=rack.name,
                        slot=slot,
                        pdu=pdu.id,
                        outlet=(slot - 1) % rack.outlets_per_pdu + 1,
                        gateway=gw,
                        faults=list(group.faults),
                        **kw,
                    )
                )
    # fill what explicit entries left out
    for i, m in enumerate(miners):
        seed = f"{site.site.name}/m/{i}"
        make = MODELS[m.model].make
        m.serial = m.serial or _serial(make, seed)
        m.mac = m.mac or _mac(seed, make)
        m.ip = m.ip or f"{site.site.miner_net}.250.{i + 1}"
        m.hostname = m.hostname or f"miner-{i + 1}"
        m.gateway = m.gateway or gateways[0]
    for i, p in enumerate(pdus):
        p.ip = p.ip or f"{site.site.pdu_net}.250.{i + 1}"
        p.serial = p.serial or _det(p.id, 5).hex().upper()
    _check(pdus, miners)
    return SiteFile(site=site.site, pdus=pdus, miners=miners, racks=[])


def _check(pdus: list[PduDef], miners: list[MinerDef]) -> None:
    by_id = {p.id: p for p in pdus}
    if len(by_id) != len(pdus):
        raise ValueError("duplicate PDU id")
    seen_ip: set[str] = set()
    seen_outlet: set[tuple[str, int]] = set()
    for m in miners:
        assert m.ip is not None
        if not ipaddress.ip_address(m.ip).is_loopback:
            raise ValueError(f"miner {m.serial}: {m.ip} is not a loopback address")
        if m.ip in seen_ip:
            raise ValueError(f"two miners at {m.ip}")
        seen_ip.add(m.ip)
        if (m.pdu is None) != (m.outlet is None):
            raise ValueError(f"miner {m.serial}: give both pdu and outlet, or neither")
        if m.pdu is not None and m.outlet is not None:
            if m.pdu not in by_id:
                raise ValueError(f"miner {m.serial}: unknown PDU {m.pdu}")
            if not 1 <= m.outlet <= by_id[m.pdu].outlets:
                raise ValueError(f"miner {m.serial}: PDU {m.pdu} has no outlet {m.outlet}")
            if (m.pdu, m.outlet) in seen_outlet:
                raise ValueError(f"two miners on {m.pdu} outlet {m.outlet}")
            seen_outlet.add((m.pdu, m.outlet))
    for p in pdus:
        assert p.ip is not None
        if not ipaddress.ip_address(p.ip).is_loopback:
            raise ValueError(f"PDU {p.id}: {p.ip} is not a loopback address")


def load_site(path: str | Path, miner_net: str | None = None, pdu_net: str | None = None) -> SiteFile:
    """Read, validate and expand a site file (TOML or YAML); `*_net` move the site to other 127.N blocks
    (tests run several sites at once)."""
    p = Path(path)
    text = p.read_text()
    raw = yaml.safe_load(text) if p.suffix in (".yaml", ".yml") else tomllib.loads(text)
    site = SiteFile.model_validate(raw or {})
    if miner_net:
        site.site.miner_net = miner_net
    if pdu_net:
        site.site.pdu_net = pdu_net
    return expand(SiteFile.model_validate(site.model_dump()))
