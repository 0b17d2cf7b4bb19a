"""The few BER (X.690) pieces SNMP needs, written for the CPU a poll costs: encode once, decode what was asked.

A PDU read is a handful of datagrams of INTEGER, OCTET STRING, OID and Gauge/Counter values. A general ASN.1 stack
(pysnmp on pyasn1) builds an object per tag, per value and per OID arc both ways, and spent ~15 ms of CPU on a
40-varbind GET; this module keeps datagrams as bytes:

- requests are concatenated from pre-encoded varbinds (an OID's TLV is built once and kept by the session);
- answers are cut into (raw OID, value tag, raw value) triples; the caller maps a raw OID it asked for back to its
  name with one dict lookup, and only decodes the OIDs it did not send (walk rows: only the index after the column);
- values become int / str / OID tuple / None (noSuchObject, noSuchInstance, endOfMibView, NULL).

Only definite lengths (all SNMP agents send them); a malformed datagram raises `BerError` (a DeviceError).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import DeviceError

Oid = tuple[int, ...]
Value = int | str | Oid | None

INTEGER, OCTETS, NULL, OID, SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
IPADDRESS, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW = 0x80, 0x81, 0x82
GET, GETNEXT, RESPONSE, SET, GETBULK, REPORT = 0xA0, 0xA1, 0xA2, 0xA3, 0xA5, 0xA8
UNSIGNED = frozenset({COUNTER32, GAUGE32, TIMETICKS, COUNTER64})
NULL_VALUE = b"\x05\x00"

ERROR_STATUS = (
    "noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess", "wrongType", "wrongLength",
    "wrongEncoding", "wrongValue", "noCreation", "inconsistentValue", "resourceUnavailable", "commitFailed",
    "undoFailed", "authorizationError", "notWritable", "inconsistentName",
)  # fmt: skip


class BerError(DeviceError):
    """A datagram that is not well-formed SNMP BER."""


# ---------------------------------------------------------------- encoding
def length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + length(len(body)) + body


def integer(value: int) -> bytes:
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def octets(value: bytes) -> bytes:
    return tlv(OCTETS, value)


def oid_body(oid: str | Oid) -> bytes:
    """The content octets of an OID (`1.3.6.1...` or a tuple)."""
    arcs = tuple(int(p) for p in oid.strip(".").split(".")) if isinstance(oid, str) else oid
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise BerError(f"not an OID: {oid!r}")
    out = bytearray()
    for arc in (arcs[0] * 40 + arcs[1], *arcs[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = bytearray()
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        chunk[0] &= 0x7F
        out += chunk[::-1]
    return bytes(out)


def varbind(oid_content: bytes, value: bytes = NULL_VALUE) -> bytes:
    """One VarBind from an OID's content octets and an encoded value (NULL for reads)."""
    return tlv(SEQUENCE, tlv(OID, oid_content) + value)


def pdu(tag: int, request_id: int, first: int, second: int, varbinds: bytes) -> bytes:
    """A PDU: `first`/`second` are error-status/index, or non-repeaters/max-repetitions for GETBULK."""
    return tlv(tag, integer(request_id) + integer(first) + integer(second) + tlv(SEQUENCE, varbinds))


def v2c_message(community: bytes, body: bytes) -> bytes:
    return tlv(SEQUENCE, b"\x02\x01\x01" + octets(community) + body)


# ---------------------------------------------------------------- decoding
def header(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at `pos`."""
    try:
        tag = buf[pos]
        n = buf[pos + 1]
        if n < 0x80:
            start, end = pos + 2, pos + 2 + n
        else:
            k = n & 0x7F
            start = pos + 2 + k
            end = start + int.from_bytes(buf[pos + 2 : start], "big")
    except IndexError:
        raise BerError("truncated datagram") from None
    if end > len(buf) or (n >= 0x80 and not 0 < n & 0x7F <= 4):
        raise BerError("truncated datagram or bad length")
    return tag, start, end


def expect(buf: bytes, pos: int, tag: int) -> tuple[int, int]:
    got, start, end = header(buf, pos)
    if got != tag:
        raise BerError(f"expected tag 0x{tag:02x}, got 0x{got:02x} at byte {pos}")
    return start, end


def read_int(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the INTEGER at `pos`."""
    start, end = expect(buf, pos, INTEGER)
    return int.from_bytes(buf[start:end], "big", signed=True), end


def read_octets(buf: bytes, pos: int) -> tuple[bytes, int]:
    start, end = expect(buf, pos, OCTETS)
    return buf[start:end], end


def decode_arcs(raw: bytes) -> Oid:
    """Sub-identifiers encoded one after another (no first-arc packing): an OID suffix after a column."""
    if not raw or max(raw) < 0x80:
        return tuple(raw)
    arcs: list[int] = []
    arc = 0
    for byte in raw:
        arc = (arc << 7) | (byte & 0x7F)
        if byte < 0x80:
            arcs.append(arc)
            arc = 0
    return tuple(arcs)


def decode_oid(raw: bytes) -> Oid:
    if not raw:
        raise BerError("empty OID")
    arcs = decode_arcs(raw)
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return head + arcs[1:]


def oid_text(oid: Oid) -> str:
    return ".".join(map(str, oid))


def value_of(tag: int, raw: bytes) -> Value:
    """A varbind value as Python: INTEGER/Counter/Gauge/TimeTicks int, OCTET STRING text (hex when not UTF-8),
    OID tuple, IpAddress dotted text; None for NULL and the v2 exceptions (noSuchObject, ..., endOfMibView)."""
    if tag == INTEGER:
        return int.from_bytes(raw, "big", signed=True)
    if tag in UNSIGNED:
        return int.from_bytes(raw, "big")
    if tag in (OCTETS, OPAQUE):
        try:
            return raw.decode("utf-8").rstrip("\x00")
        except UnicodeDecodeError:
            return raw.hex()
    if tag == OID:
        return decode_oid(raw)
    if tag == IPADDRESS:
        return ".".join(map(str, raw))
    return None


@dataclass
class Pdu:
    """An answer PDU; `varbinds` are (raw OID content, value tag, raw value content)."""

    tag: int
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[tuple[bytes, int, bytes]]

    def error_name(self) -> str:
        status = self.error_status
        return ERROR_STATUS[status] if 0 <= status < len(ERROR_STATUS) else f"error {status}"


def read_pdu(buf: bytes, pos: int) -> Pdu:
    tag, start, _ = header(buf, pos)
    if tag not in (RESPONSE, REPORT, GET, GETNEXT, SET, GETBULK):
        raise BerError(f"not an SNMP PDU: tag 0x{tag:02x}")
    request_id, p = read_int(buf, start)
    status, p = read_int(buf, p)
    index, p = read_int(buf, p)
    p, list_end = expect(buf, p, SEQUENCE)
    binds: list[tuple[bytes, int, bytes]] = []
    append = binds.append
    while p < list_end:
        # VarBind ::= SEQUENCE { name OID, value }: parsed inline (this loop is most of a poll's decoding)
        if buf[p] != SEQUENCE:
            raise BerError(f"expected a VarBind at byte {p}")
        _, p, bind_end = header(buf, p)
        if buf[p] != OID:
            raise BerError(f"expected an OID at byte {p}")
        _, o_start, o_end = header(buf, p)
        value_tag, v_start, v_end = header(buf, o_end)
        if v_end > bind_end:
            raise BerError("VarBind overruns its sequence")
        append((buf[o_start:o_end], value_tag, buf[v_start:v_end]))
        p = bind_end
    return Pdu(tag, request_id, status, index, binds)


def read_v2c(buf: bytes) -> tuple[int, bytes, Pdu]:
    """(version, community, PDU) of a v1/v2c message."""
    start, _ = expect(buf, 0, SEQUENCE)
    version, p = read_int(buf, start)
    community, p = read_octets(buf, p)
    return version, community, read_pdu(buf, p)


def message_id(buf: bytes) -> int | None:
    """The id that pairs an answer with its request: request-id (v1/v2c) or msgID (v3); None when unreadable."""
    try:
        start, _ = expect(buf, 0, SEQUENCE)
        version, p = read_int(buf, start)
        if version == 3:
            p, _ = expect(buf, p, SEQUENCE)
            return read_int(buf, p)[0]
        _, p = read_octets(buf, p)
        _, p, _ = header(buf, p)
        return read_int(buf, p)[0]
    except BerError:
        return None
