"""SNMP sessions over pysnmp 7 (asyncio): GET, multi-column GETBULK walks, SET with read-back; v2c and v3 USM.

OIDs are plain dotted strings and MIB lookup is off (`lookupMib=False`): no MIB compilation, and far less CPU
per request. One `SnmpEngine` is shared by every session of the process (pysnmp engines are heavy).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    Integer,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    auth,
    bulk_cmd,
    get_cmd,
    set_cmd,
)
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from agent.errors import DeviceError, DeviceUnreachable

log = logging.getLogger(__name__)

DEFAULT_PORT = 161
Oid = tuple[int, ...]

_AUTH = {
    "none": auth.usmNoAuthProtocol,
    "md5": auth.usmHMACMD5AuthProtocol,
    "sha": auth.usmHMACSHAAuthProtocol,
    "sha224": auth.usmHMAC128SHA224AuthProtocol,
    "sha256": auth.usmHMAC192SHA256AuthProtocol,
    "sha384": auth.usmHMAC256SHA384AuthProtocol,
    "sha512": auth.usmHMAC384SHA512AuthProtocol,
}
_PRIV = {
    "none": auth.usmNoPrivProtocol,
    "des": auth.usmDESPrivProtocol,
    "3des": auth.usm3DESEDEPrivProtocol,
    "aes": auth.usmAesCfb128Protocol,
    "aes128": auth.usmAesCfb128Protocol,
    "aes192": auth.usmAesCfb192Protocol,
    "aes256": auth.usmAesCfb256Protocol,
}


@dataclass(frozen=True)
class V3Auth:
    """SNMPv3 USM credentials. Protocols: auth md5|sha|sha224..sha512, priv des|3des|aes|aes192|aes256."""

    user: str
    auth_key: str | None = None
    priv_key: str | None = None
    auth_protocol: str = "sha"
    priv_protocol: str = "aes"
    context: str = ""  # SNMPv3 context name (most PDUs: empty)

    def usm(self) -> UsmUserData:
        if self.auth_protocol not in _AUTH or self.priv_protocol not in _PRIV:
            raise ValueError(f"unknown SNMPv3 protocol {self.auth_protocol}/{self.priv_protocol}")
        return UsmUserData(
            self.user,
            authKey=self.auth_key,
            privKey=self.priv_key,
            authProtocol=_AUTH[self.auth_protocol] if self.auth_key else auth.usmNoAuthProtocol,
            privProtocol=_PRIV[self.priv_protocol] if self.priv_key else auth.usmNoPrivProtocol,
        )


_ENGINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SnmpEngine] = weakref.WeakKeyDictionary()


def shared_engine() -> SnmpEngine:
    """One engine per event loop (an engine's transports belong to the loop that opened them)."""
    loop = asyncio.get_running_loop()
    engine = _ENGINES.get(loop)
    if engine is None:
        engine = _ENGINES[loop] = SnmpEngine()
    return engine


def parse_oid(text: str) -> Oid:
    return tuple(int(part) for part in text.strip(".").split("."))


def oid_text(oid: Oid) -> str:
    return ".".join(map(str, oid))


def to_python(value: Any) -> int | str | Oid | None:
    """SNMP value -> int / str / OID tuple; None for noSuchObject/noSuchInstance/endOfMibView."""
    if isinstance(value, NoSuchObject | NoSuchInstance | EndOfMibView):
        return None
    tag = value.__class__.__name__
    if tag == "ObjectIdentifier":
        return tuple(value)
    if tag in ("OctetString", "DisplayString", "Opaque"):
        raw = bytes(value)
        try:
            return raw.decode("utf-8").rstrip("\x00")
        except UnicodeDecodeError:
            return raw.hex()
    if tag == "IpAddress":
        return ".".join(str(b) for b in bytes(value))
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


BIND_CACHE = 4096


class SnmpSession:
    """One PDU agent: `get`, `walk` (several table columns at once), `set_int` (verified by reading back)."""

    def __init__(
        self,
        host: str,
        *,
        port: int = DEFAULT_PORT,
        community: str = "public",
        write_community: str | None = None,
        v3: V3Auth | None = None,
        timeout: float = 2.0,
        retries: int = 1,
        max_repetitions: int = 25,
    ) -> None:
        self.host = host
        self.port = port
        self.community = community
        self.write_community = write_community
        self.v3 = v3
        self.timeout = timeout
        self.retries = retries
        self.max_repetitions = max_repetitions
        self._target: UdpTransportTarget | None = None
        self._binds: dict[str, ObjectType] = {}

    def _bind(self, oid: str) -> ObjectType:
        """A request varbind for `oid`, kept once pysnmp has resolved it: pysnmp resolves every request varbind
        against its MIB tree (with lookupMib=False too), which cost more CPU than the rest of a poll; a resolved
        ObjectType is returned as is. Bounded: a session asks for a fixed set of OIDs."""
        bind = self._binds.get(oid)
        if bind is None:
            if len(self._binds) >= BIND_CACHE:
                self._binds.clear()
            bind = self._binds[oid] = ObjectType(ObjectIdentity(oid))
        return bind

    def _auth(self, write: bool = False) -> CommunityData | UsmUserData:
        if self.v3 is not None:
            return self.v3.usm()
        community = (self.write_community or self.community) if write else self.community
        return CommunityData(community, mpModel=1)

    @property
    def engine(self) -> SnmpEngine:
        return shared_engine()

    def _context(self) -> ContextData:
        return ContextData(contextName=self.v3.context) if self.v3 is not None and self.v3.context else ContextData()

    async def _transport(self) -> UdpTransportTarget:
        if self._target is None:
            self._target = await UdpTransportTarget.create(
                (self.host, self.port), timeout=self.timeout, retries=self.retries
            )
        return self._target

    def _raise_on_error(self, what: str, indication: Any, status: Any, index: Any) -> None:
        if indication:
            text = str(indication)
            if "timeout" in text.lower() or "No SNMP response" in text:
                raise DeviceUnreachable(f"{self.host}:{self.port} {what}: {text}")
            raise DeviceError(f"{self.host}:{self.port} {what}: {text}")
        if status and int(status) != 0:
            raise DeviceError(f"{self.host}:{self.port} {what}: {status.prettyPrint()} at index {index}")

    async def get(self, oids: list[str]) -> dict[str, int | str | Oid | None]:
        """Scalar GET of several OIDs in one request; missing ones map to None."""
        if not oids:
            return {}
        binds = [self._bind(o) for o in oids]
        indication, status, index, result = await get_cmd(
            self.engine, self._auth(), await self._transport(), self._context(), *binds, lookupMib=False
        )
        self._raise_on_error("GET", indication, status, index)
        return {oid_text(tuple(name)): to_python(value) for name, value in result}

    async def walk(self, columns: list[str]) -> dict[str, dict[Oid, int | str | Oid | None]]:
        """GETBULK-walk several table columns together; returns {column: {index suffix: value}}."""
        roots = {c: parse_oid(c) for c in columns}
        out: dict[str, dict[Oid, int | str | Oid | None]] = {c: {} for c in columns}
        cursors = dict(roots)
        active = list(columns)
        for _ in range(10_000):  # bounded: a table of 10,000 x max_repetitions rows is no PDU
            if not active:
                break
            binds = [self._bind(oid_text(cursors[c])) for c in active]
            indication, status, index, flat = await bulk_cmd(
                self.engine,
                self._auth(),
                await self._transport(),
                self._context(),
                0,
                self.max_repetitions,
                *binds,
                lookupMib=False,
            )
            self._raise_on_error("GETBULK", indication, status, index)
            active = self._absorb(active, roots, cursors, out, list(flat))
        return out

    @staticmethod
    def _absorb(
        active: list[str],
        roots: dict[str, Oid],
        cursors: dict[str, Oid],
        out: dict[str, dict[Oid, int | str | Oid | None]],
        flat: list[Any],
    ) -> list[str]:
        """Sort a GETBULK answer (row-major: each repetition lists every requested column) into the columns."""
        width = len(active)
        finished: set[str] = set()
        for position, (name, value) in enumerate(flat):
            column = active[position % width]
            if column in finished:
                continue
            oid = tuple(name)
            root = roots[column]
            if isinstance(value, EndOfMibView) or oid[: len(root)] != root or oid <= cursors[column]:
                finished.add(column)
                continue
            out[column][oid[len(root) :]] = to_python(value)
            cursors[column] = oid
        if not flat:
            return []
        return [c for c in active if c not in finished]

    async def set_int(self, oid: str, value: int) -> None:
        """SET an INTEGER; raises when the agent refuses or the answer carries noSuchObject/noSuchInstance."""
        indication, status, index, result = await set_cmd(
            self.engine,
            self._auth(write=True),
            await self._transport(),
            self._context(),
            ObjectType(ObjectIdentity(oid), Integer(value)),
            lookupMib=False,
        )
        self._raise_on_error(f"SET {oid}={value}", indication, status, index)
        for _, answered in result:
            if to_python(answered) is None:
                raise DeviceError(f"{self.host}: SET {oid} answered {answered.prettyPrint()}: OID not writable here")
