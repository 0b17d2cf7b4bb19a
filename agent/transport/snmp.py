"""SNMP sessions on asyncio datagrams: GET, multi-column GETBULK walks, SET with read-back; v2c and v3 (USM).

Kuat's own codec (`ber`, `usm`), not a general SNMP stack: a PDU poll is a few datagrams of integers, and pysnmp
spent 7x the CPU of Prometheus' snmp_exporter on them (docs/decisions.md, "PDU reads: our own SNMP codec";
bench/pdu_read.py measures both). What this buys per request:

- the request is bytes joined from varbinds encoded once per session (an OID list the driver asks for again and
  again is one cached bytes object), with a fresh request-id;
- the answer is matched to its request by id, and its varbinds are mapped back to the OIDs asked for by one dict
  lookup on their raw bytes; a walk decodes only the row index after the column's OID.

One connected UDP socket per session: the kernel then reports an ICMP port-unreachable as a refused connection
(a clear error at once, instead of a timeout), and answers from any other address are dropped by the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import weakref
from collections.abc import Callable
from typing import Any

from agent.errors import DeviceError, DeviceUnreachable
from agent.transport import ber, usm
from agent.transport.ber import Oid, Value, oid_text
from agent.transport.usm import V3Auth

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PORT", "Oid", "SnmpSession", "V3Auth", "oid_text", "parse_oid"]

DEFAULT_PORT = 161
ENCODED_CACHE = 4096  # per session: OIDs (and OID lists) it keeps encoded; a session asks for a fixed set
MAX_OIDS = 60  # varbinds per GET, as gosnmp (snmp_exporter) sends; fewer after an agent's tooBig
RESYNCS = 3  # SNMPv3 discovery + time-window reports answered before a request is given up


def parse_oid(text: str) -> Oid:
    return tuple(int(part) for part in text.strip(".").split("."))


class _Datagrams(asyncio.DatagramProtocol):
    """Hands each answer to the request waiting for its id; a refused port fails every waiting request.
    Holds no reference to its session, so a dropped session is collected (and its socket closed)."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[bytes]] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        msg_id = ber.message_id(data)
        future = self.waiting.get(msg_id) if msg_id is not None else None
        if future is not None and not future.done():
            future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(exc)


def _drop(transport: asyncio.DatagramTransport) -> None:
    """Close a dropped session's socket; when its loop is closed already, the socket goes with the transport."""
    with contextlib.suppress(RuntimeError):
        transport.close()


class _Plan:
    """A request's varbind list encoded once, and its raw OIDs back to the OID texts asked for."""

    __slots__ = ("names", "varbinds")

    def __init__(self, oids: tuple[str, ...]) -> None:
        bodies = [ber.oid_body(o) for o in oids]
        self.varbinds = b"".join(ber.varbind(b) for b in bodies)
        self.names = dict(zip(bodies, oids, strict=True))


class SnmpSession:
    """One SNMP agent: `get`, `walk` (several table columns at once), `set_int` (the agent's answer checked)."""

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
        max_oids: int = MAX_OIDS,
    ) -> None:
        self.host = host
        self.port = port
        self.community = community
        self.write_community = write_community
        self.v3 = v3
        self.timeout = timeout
        self.retries = retries
        self.max_repetitions = max_repetitions
        self.max_oids = max_oids
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _Datagrams | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._request_id = random.randrange(1, 2**30)
        self._usm = usm.UsmState() if v3 is not None else None
        self._read = community.encode()
        self._write = (write_community or community).encode()

    # ------------------------------------------------------------ the socket
    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def _open(self) -> _Datagrams:
        loop = asyncio.get_running_loop()
        if self._protocol is not None and self._loop is loop and self._transport is not None:
            return self._protocol
        self.close()
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(self.host).version == 6 else socket.AF_INET
        except ValueError:
            family = socket.AF_UNSPEC  # a host name: resolved by the loop
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                _Datagrams, remote_addr=(self.host, self.port), family=family
            )
        except OSError as exc:
            raise DeviceUnreachable(f"{self.where}: cannot reach the address ({exc.strerror or exc})") from exc
        self._transport, self._protocol, self._loop = transport, protocol, loop
        weakref.finalize(self, _drop, transport)
        return protocol

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._transport = self._protocol = self._loop = None

    def _next_id(self) -> int:
        self._request_id = self._request_id + 1 if self._request_id < 2**31 - 1 else 1
        return self._request_id

    async def _exchange(self, message: Callable[[int], bytes], what: str) -> tuple[int, bytes]:
        """Send (with retries) and wait for the answer to this request's id: (id, answer datagram)."""
        protocol = await self._open()
        assert self._transport is not None
        msg_id = self._next_id()
        data = message(msg_id)
        for attempt in range(self.retries + 1):
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            protocol.waiting[msg_id] = future
            try:
                self._transport.sendto(data)
                async with asyncio.timeout(self.timeout):
                    return msg_id, await future
            except TimeoutError:
                log.debug("%s %s: no answer to try %d", self.where, what, attempt + 1)
            except ConnectionRefusedError as exc:
                raise DeviceUnreachable(
                    f"{self.where} {what}: connection refused (nothing listens on udp port {self.port})"
                ) from exc
            except OSError as exc:
                raise DeviceUnreachable(f"{self.where} {what}: {exc.strerror or exc}") from exc
            finally:
                protocol.waiting.pop(msg_id, None)
        tries = self.retries + 1
        hint = "wrong SNMPv3 user or keys" if self.v3 else "wrong community"
        raise DeviceUnreachable(
            f"{self.where} {what}: no SNMP answer in {self.timeout:g} s ({tries} {'try' if tries == 1 else 'tries'}): "
            f"{hint}, or the device is down or filtered"
        )

    async def _request(self, tag: int, first: int, second: int, varbinds: bytes, what: str, write: bool = False
                       ) -> ber.Pdu:
        """One request PDU and its answer PDU (v2c, or v3 with discovery and time-window resync)."""
        if self.v3 is None:
            community = self._write if write else self._read

            def v2c(request_id: int) -> bytes:
                return ber.v2c_message(community, ber.pdu(tag, request_id, first, second, varbinds))

            request_id, data = await self._exchange(v2c, what)
            _, _, answer = ber.read_v2c(data)
            return self._checked(answer, request_id, what)
        return await self._request_v3(tag, first, second, varbinds, what)

    async def _request_v3(self, tag: int, first: int, second: int, varbinds: bytes, what: str) -> ber.Pdu:
        v3, state = self.v3, self._usm
        assert v3 is not None and state is not None
        for _ in range(RESYNCS):
            if not state.engine_id:
                _, data = await self._exchange(usm.discovery_message, f"{what} (SNMPv3 discovery)")
            else:
                def message(msg_id: int) -> bytes:
                    return usm.request_message(v3, state, msg_id, ber.pdu(tag, msg_id, first, second, varbinds))

                _, data = await self._exchange(message, what)
            try:
                answer = usm.read_answer(data, v3, state)
            except usm.Resync:
                continue
            except usm.UsmError as exc:
                raise usm.UsmError(f"{self.where} {what}: {exc} (user {v3.user!r})") from exc
            return self._checked(answer.pdu, answer.msg_id, what)
        raise usm.UsmError(f"{self.where} {what}: SNMPv3 engine discovery did not settle after {RESYNCS} reports")

    def _checked(self, answer: ber.Pdu, request_id: int, what: str) -> ber.Pdu:
        if answer.tag == ber.REPORT:
            raise DeviceError(f"{self.where} {what}: the agent sent a Report")
        if answer.request_id != request_id:
            raise DeviceError(f"{self.where} {what}: answer to another request ({answer.request_id})")
        return answer

    def _plan(self, oids: tuple[str, ...]) -> _Plan:
        plan = self._plans.get(oids)
        if plan is None:
            if len(self._plans) >= ENCODED_CACHE:
                self._plans.clear()
            plan = self._plans[oids] = _Plan(oids)
        return plan

    # ------------------------------------------------------------ GET, walk, SET
    async def get(self, oids: list[str]) -> dict[str, Value]:
        """GET of several OIDs, `max_oids` per request (sent together); missing ones map to None. An agent that
        answers tooBig gets halves, and this session asks for no more than that from then on."""
        if not oids:
            return {}
        if len(oids) <= self.max_oids:
            return await self._get_one(tuple(oids))
        size = self.max_oids
        parts = await asyncio.gather(*(self._get_one(tuple(oids[i : i + size])) for i in range(0, len(oids), size)))
        return {name: value for part in parts for name, value in part.items()}

    async def _get_one(self, oids: tuple[str, ...]) -> dict[str, Value]:
        plan = self._plan(oids)
        answer = await self._request(ber.GET, 0, 0, plan.varbinds, "GET")
        if answer.error_status == 1 and len(oids) > 1:  # tooBig
            self.max_oids = min(self.max_oids, max(1, len(oids) // 2))
            log.info("%s answered tooBig to a GET of %d OIDs: now %d per request", self.where, len(oids),
                     self.max_oids)
            return await self.get(list(oids))
        if answer.error_status:
            raise DeviceError(f"{self.where} GET: {answer.error_name()} at varbind {answer.error_index}")
        names = plan.names
        out: dict[str, Value] = {}
        for raw, tag, value in answer.varbinds:
            name = names.get(raw)
            out[name if name is not None else oid_text(ber.decode_oid(raw))] = ber.value_of(tag, value)
        return out

    async def first_rows(self, columns: list[str]) -> bool:
        """Whether any of `columns` has a row (one GETNEXT of them all): the cheap probe of a table."""
        roots = [ber.oid_body(c) for c in columns]
        answer = await self._request(ber.GETNEXT, 0, 0, b"".join(ber.varbind(r) for r in roots), "GETNEXT")
        if answer.error_status:
            return False  # v1-style noSuchName at the end of the MIB
        return any(
            tag not in (ber.END_OF_MIB_VIEW, ber.NO_SUCH_OBJECT, ber.NO_SUCH_INSTANCE)
            and len(raw) > len(root) and raw.startswith(root)
            for root, (raw, tag, _) in zip(roots, answer.varbinds, strict=False)
        )

    async def walk(self, columns: list[str]) -> dict[str, dict[Oid, Value]]:
        """GETBULK-walk several table columns together; returns {column: {index suffix: value}}."""
        roots = {c: ber.oid_body(c) for c in columns}
        out: dict[str, dict[Oid, Value]] = {c: {} for c in columns}
        cursors: dict[str, tuple[bytes, Oid]] = {c: (roots[c], ()) for c in columns}  # (raw OID, suffix) read last
        active = list(dict.fromkeys(columns))
        for _ in range(10_000):  # bounded: a table of 10,000 x max_repetitions rows is no PDU
            if not active:
                break
            varbinds = b"".join(ber.varbind(cursors[c][0]) for c in active)
            answer = await self._request(ber.GETBULK, 0, self.max_repetitions, varbinds, "GETBULK")
            if answer.error_status:
                raise DeviceError(f"{self.where} GETBULK: {answer.error_name()} at varbind {answer.error_index}")
            active = self._absorb(active, roots, cursors, out, answer.varbinds)
        return out

    @staticmethod
    def _absorb(
        active: list[str],
        roots: dict[str, bytes],
        cursors: dict[str, tuple[bytes, Oid]],
        out: dict[str, dict[Oid, Value]],
        binds: list[tuple[bytes, int, bytes]],
    ) -> list[str]:
        """Sort a GETBULK answer (row-major: each repetition lists every requested column) into the columns."""
        width = len(active)
        finished: set[str] = set()
        for position, (raw, tag, value) in enumerate(binds):
            column = active[position % width]
            if column in finished:
                continue
            root = roots[column]
            if tag == ber.END_OF_MIB_VIEW or len(raw) <= len(root) or not raw.startswith(root):
                finished.add(column)
                continue
            suffix = ber.decode_arcs(raw[len(root) :])
            if suffix <= cursors[column][1]:  # an agent that does not move forward
                finished.add(column)
                continue
            out[column][suffix] = ber.value_of(tag, value)
            cursors[column] = (raw, suffix)
        if not binds:
            return []
        return [c for c in active if c not in finished]

    async def set_int(self, oid: str, value: int) -> None:
        """SET an INTEGER; raises when the agent refuses or the answer carries noSuchObject/noSuchInstance."""
        varbinds = ber.varbind(ber.oid_body(oid), ber.integer(value))
        answer = await self._request(ber.SET, 0, 0, varbinds, f"SET {oid}={value}", write=True)
        if answer.error_status:
            raise DeviceError(f"{self.where}: SET {oid}={value} refused: {answer.error_name()}")
        for _, tag, _ in answer.varbinds:
            if tag in (ber.NO_SUCH_OBJECT, ber.NO_SUCH_INSTANCE, ber.END_OF_MIB_VIEW):
                raise DeviceError(f"{self.where}: SET {oid} answered noSuchObject: OID not writable here")
