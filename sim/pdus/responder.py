"""One pysnmp engine answering SNMP v1/v2c for every simulated PDU of a site, each on its own 127.x address.

Each PDU gets its own UDP transport registered under its own transport domain (udpDomain + (n,)), so the
responder knows from the execution context which PDU a request was sent to. pysnmp's standard command responders
(GET, GETNEXT, GETBULK, SET) parse, authenticate the community and answer; a custom MIB instrumentation controller
serves the family table of the addressed PDU, reading the site's physics at request time.

Per PDU, like a real agent: an unknown community, or any request to a PDU marked offline, gets no reply at all;
the read community reads; a SET needs the write community (else noAccess), a writable object (else notWritable),
the right type (wrongType) and an accepted enum value (wrongValue) - and a rejected SET changes nothing.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyasn1.type import univ
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.smi import error as smi_error
from pysnmp.smi.instrum import AbstractMibInstrumController

from sim.pdus.families import layout_for
from sim.pdus.mib import EnumControl, Instance, Layout, NameControl, Oid, Syntax
from sim.pdus.state import PduState

log = logging.getLogger(__name__)

REQUEST_CONTEXT = "rfc3412.receiveMessage:request"
VarBind = tuple[Any, Any]

_WIRE_TYPES: dict[Syntax, Callable[[Any], Any]] = {
    Syntax.INTEGER: rfc1902.Integer32,
    Syntax.UNSIGNED: lambda v: rfc1902.Unsigned32(max(0, v)),
    Syntax.GAUGE: lambda v: rfc1902.Gauge32(max(0, v)),
    Syntax.COUNTER32: lambda v: rfc1902.Counter32(v % 2**32),
    Syntax.COUNTER64: lambda v: rfc1902.Counter64(v % 2**64),
    Syntax.OCTETS: rfc1902.OctetString,
    Syntax.OID: rfc1902.ObjectIdentifier,
    Syntax.TICKS: lambda v: rfc1902.TimeTicks(v % 2**32),
}


@dataclass
class Request:
    """Who is asking whom: the addressed PDU, its MIB layout, and whether the community may write."""

    state: PduState
    layout: Layout
    can_write: bool


class Registry:
    """Maps a request's transport domain to its PDU and its community (security name) to read/write rights."""

    def __init__(self) -> None:
        self.by_domain: dict[tuple[int, ...], PduState] = {}
        self.community_of: dict[str, str] = {}  # securityName -> community string
        self.sockets: list[socket.socket] = []

    def resolve(self, engine: SnmpEngine) -> Request | None:
        """The request being processed, or None when the PDU must not answer (offline, foreign community)."""
        ctx = engine.observer.get_execution_context(REQUEST_CONTEXT)
        state = self.by_domain.get(tuple(ctx["transportDomain"]))
        if state is None or state.pdu.offline:
            return None
        community = self.community_of.get(str(ctx["securityName"]))
        d = state.pdu.d
        if community == d.write_community:
            return Request(state, layout_for(d.family, len(state.pdu.outlets)), can_write=True)
        if community == d.community:
            return Request(state, layout_for(d.family, len(state.pdu.outlets)), can_write=False)
        return None


def wire_value(inst: Instance, state: PduState, idx: int) -> Any:
    """Read an instance now and encode it with its SNMP type (scaled and rounded when the object has a scale)."""
    try:
        raw = inst.obj.get(state, inst.row)
        if inst.obj.scale is not None:
            raw = round(float(raw) * inst.obj.scale)  # type: ignore[arg-type]
        return _WIRE_TYPES[inst.obj.syntax](raw)
    except Exception as exc:
        log.exception("PDU %s: reading %s failed", state.pdu.d.id, inst.obj.name)
        raise smi_error.GenError(name=inst.oid, idx=idx) from exc


class PduMibController(AbstractMibInstrumController):
    """Serves the addressed PDU's family table (see sim.pdus.mib)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _request(self, engine: SnmpEngine) -> Request:
        request = self.registry.resolve(engine)
        if request is None:  # the responders drop such requests before they get here
            raise smi_error.GenError(idx=0)
        return request

    def read_variables(self, *var_binds: VarBind, **ctx: Any) -> list[VarBind]:
        req = self._request(ctx["snmpEngine"])
        out: list[VarBind] = []
        for i, (name, _) in enumerate(var_binds):
            key = tuple(name)
            inst = req.layout.exact(key)
            if inst is not None:
                out.append((rfc1902.ObjectName(key), wire_value(inst, req.state, i)))
            elif req.layout.has_object(key):
                out.append((name, rfc1905.noSuchInstance))
            else:
                out.append((name, rfc1905.noSuchObject))
        return out

    def read_next_variables(self, *var_binds: VarBind, **ctx: Any) -> list[VarBind]:
        req = self._request(ctx["snmpEngine"])
        out: list[VarBind] = []
        for i, (name, _) in enumerate(var_binds):
            inst = req.layout.next_after(tuple(name))
            if inst is None:
                out.append((name, rfc1905.endOfMibView))
            else:
                out.append((rfc1902.ObjectName(inst.oid), wire_value(inst, req.state, i)))
        return out

    def write_variables(self, *var_binds: VarBind, **ctx: Any) -> list[VarBind]:
        """Check every binding first (RFC 3416 4.2.5 order), then apply them all: all or nothing."""
        req = self._request(ctx["snmpEngine"])
        apply = [self._check_write(req, i, tuple(name), value) for i, (name, value) in enumerate(var_binds)]
        for fn in apply:
            fn()
        return [(rfc1902.ObjectName(tuple(name)), value) for name, value in var_binds]

    def _check_write(self, req: Request, idx: int, name: Oid, value: Any) -> Callable[[], None]:
        if not req.can_write:
            raise smi_error.NoAccessError(name=name, idx=idx)
        inst = req.layout.exact(name)
        if inst is None:
            writable_column = any(
                i.obj.control is not None and name[: len(i.obj.oid)] == i.obj.oid for i in req.layout.instances
            )
            raise (smi_error.NoCreationError if writable_column else smi_error.NotWritableError)(name=name, idx=idx)
        control = inst.obj.control
        if control is None:
            raise smi_error.NotWritableError(name=name, idx=idx)
        if isinstance(control, EnumControl):
            return self._enum_write(req.state, inst, control, value, idx)
        return self._name_write(req.state, inst, control, value, idx)

    @staticmethod
    def _enum_write(state: PduState, inst: Instance, control: EnumControl, value: Any, idx: int) -> Callable[[], None]:
        if not isinstance(value, univ.Integer):
            raise smi_error.WrongTypeError(name=inst.oid, idx=idx)
        cmd = control.commands.get(int(value))
        if cmd is None:
            raise smi_error.WrongValueError(name=inst.oid, idx=idx)
        outlets = [o.index for o in state.pdu.outlets] if control.all_outlets else [inst.row.outlet]

        def run() -> None:
            log.info("PDU %s: SET %s.%s = %d -> %s %s", state.pdu.d.id, inst.obj.name,
                     ".".join(map(str, inst.row.index)), int(value), cmd.action, outlets)
            for number in outlets:
                state.command(number, cmd)

        return run

    @staticmethod
    def _name_write(state: PduState, inst: Instance, control: NameControl, value: Any, idx: int) -> Callable[[], None]:
        if not isinstance(value, univ.OctetString):
            raise smi_error.WrongTypeError(name=inst.oid, idx=idx)
        if len(value) > control.max_len:
            raise smi_error.WrongLengthError(name=inst.oid, idx=idx)
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise smi_error.WrongValueError(name=inst.oid, idx=idx) from exc
        outlet = state.outlet(inst.row.outlet)

        def run() -> None:
            log.info("PDU %s: outlet %d renamed %r -> %r", state.pdu.d.id, outlet.index, outlet.name, text)
            outlet.name = text

        return run


def _answering(base: type[cmdrsp.CommandResponderBase]) -> type[cmdrsp.CommandResponderBase]:
    """A responder class that stays silent (no reply at all) when the registry says the PDU must not answer."""

    class Responder(base):
        def process_pdu(self, snmpEngine: SnmpEngine, *args: Any) -> None:
            registry: Registry = self.cbCtx
            if registry.resolve(snmpEngine) is None:
                log.debug("request dropped: PDU offline, unknown address or foreign community")
                return
            super().process_pdu(snmpEngine, *args)

    Responder.__name__ = f"Pdu{base.__name__}"
    return Responder


RESPONDERS = tuple(
    _answering(cls)
    for cls in (cmdrsp.GetCommandResponder, cmdrsp.NextCommandResponder, cmdrsp.BulkCommandResponder,
                cmdrsp.SetCommandResponder)
)


class PduUdpTransport(udp.UdpAsyncioTransport):
    """The UDP endpoint of one PDU: while the PDU is offline, datagrams are dropped unread (no reply at all,
    whatever the SNMP version - even an SNMPv3 discovery gets no report)."""

    def __init__(self, state: PduState) -> None:
        super().__init__()
        self.state = state

    def datagram_received(self, datagram: bytes, transportAddress: Any) -> None:
        if not self.state.pdu.offline:
            super().datagram_received(datagram, transportAddress)


def bind_udp(ip: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((ip, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def build_engine(states: Sequence[PduState], port: int) -> tuple[SnmpEngine, Registry]:
    """An engine with one UDP transport per PDU (bound now: errors surface here), communities and responders."""
    engine = SnmpEngine()
    registry = Registry()
    communities = sorted({c for s in states for c in (s.pdu.d.community, s.pdu.d.write_community)})
    for n, community in enumerate(communities):
        security_name = f"kuat-sim-community-{n}"
        config.add_v1_system(engine, security_name, community, securityName=security_name)
        registry.community_of[security_name] = community
    bound: list[socket.socket] = []
    try:
        for n, state in enumerate(states, start=1):
            try:
                sock = bind_udp(state.pdu.ip, port)
            except OSError as exc:
                hint = " (ports below 1024 need root)" if port < 1024 else ""
                raise OSError(exc.errno, f"PDU {state.pdu.d.id}: cannot bind udp {state.pdu.ip}:{port}{hint}: "
                                         f"{exc.strerror}") from exc
            bound.append(sock)
            registry.sockets.append(sock)
            domain = (*udp.DOMAIN_NAME, n)
            config.add_transport(engine, domain, PduUdpTransport(state).open_server_mode(sock=sock))
            registry.by_domain[domain] = state
    except BaseException:
        for sock in bound:
            sock.close()
        if engine.transport_dispatcher:
            engine.close_dispatcher()
        raise
    snmp_context = context.SnmpContext(engine)
    snmp_context.unregister_context_name(b"")
    snmp_context.register_context_name(b"", PduMibController(registry))
    for responder in RESPONDERS:
        responder(engine, snmp_context, registry)
    return engine, registry
