"""Kuat's SNMP codec (agent/transport/ber.py, usm.py) against an independent one (pysnmp/pyasn1), the RFC 3414 key
vectors, and real agents: snmpsim serving the recorded walks over v2c and every SNMPv3 protocol pair we offer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyasn1.codec.ber import decoder as pyasn1_decoder
from pyasn1.codec.ber import encoder as pyasn1_encoder
from pysnmp.proto import api, rfc1902

from agent.drivers.base import DeviceError, DeviceUnreachable
from agent.transport import ber, usm
from agent.transport.snmp import SnmpSession, V3Auth
from tests.support.snmpsim import SnmpSim

P2 = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
ODD_OIDS = ["1.3.6.1.4.1.13742.6.5.4.3.1.4.1.20.5", "1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.128",
            "1.3.6.1.4.1.99999.16383.16384.2097151.4294967295", "2.999.1", "0.0"]  # fmt: skip


def test_oid_encoding_matches_pyasn1_both_ways() -> None:
    for text in ODD_OIDS:
        theirs = pyasn1_encoder.encode(rfc1902.ObjectName(text))
        assert ber.tlv(ber.OID, ber.oid_body(text)) == theirs, text
        assert ber.oid_text(ber.decode_oid(ber.oid_body(text))) == text
    assert ber.decode_arcs(bytes([0x81, 0x00, 0x05])) == (128, 5)  # a row index with a multi-byte arc


def test_a_get_we_encode_is_the_get_pysnmp_reads() -> None:
    binds = b"".join(ber.varbind(ber.oid_body(o)) for o in ODD_OIDS[:3])
    message = ber.v2c_message(b"public", ber.pdu(ber.GET, 77, 0, 0, binds))
    decoded, rest = pyasn1_decoder.decode(message, asn1Spec=P2.Message())
    assert rest == b""
    pdu = P2.apiMessage.get_pdu(decoded)
    assert str(P2.apiMessage.get_community(decoded)) == "public"
    assert int(P2.apiPDU.get_request_id(pdu)) == 77
    assert [str(name) for name, _ in P2.apiPDU.get_varbinds(pdu)] == ODD_OIDS[:3]


def test_a_response_pysnmp_encodes_is_read_value_by_value() -> None:
    values = [rfc1902.Integer32(-5), rfc1902.OctetString(b"Outlet 1"), rfc1902.Gauge32(4294967295),
              rfc1902.Counter64(2**64 - 1), rfc1902.ObjectIdentifier("1.3.6.1.4.1.318.1.3.4.6"),
              rfc1902.IpAddress("10.0.3.17"), rfc1902.TimeTicks(12345), rfc1902.OctetString(b"\xff\x00\x10")]
    names = [f"1.3.6.1.4.1.318.1.1.26.{n}.0" for n in range(len(values))]
    message = P2.Message()
    response = P2.GetResponsePDU()
    P2.apiPDU.set_defaults(response)
    P2.apiPDU.set_request_id(response, 4242)
    P2.apiPDU.set_varbinds(response, list(zip(names, values, strict=True)))
    P2.apiMessage.set_defaults(message)
    P2.apiMessage.set_community(message, "public")
    P2.apiMessage.set_pdu(message, response)
    data = pyasn1_encoder.encode(message)
    version, community, pdu = ber.read_v2c(data)
    assert (version, community, pdu.tag, pdu.request_id, pdu.error_status) == (1, b"public", ber.RESPONSE, 4242, 0)
    assert ber.message_id(data) == 4242
    got = [ber.value_of(tag, raw) for _, tag, raw in pdu.varbinds]
    assert got == [-5, "Outlet 1", 4294967295, 2**64 - 1, (1, 3, 6, 1, 4, 1, 318, 1, 3, 4, 6), "10.0.3.17", 12345,
                   "ff0010"]  # fmt: skip
    assert [ber.oid_text(ber.decode_oid(raw)) for raw, _, _ in pdu.varbinds] == names


@pytest.mark.parametrize("value", [0, 1, -1, 127, 128, -128, -129, 2**31 - 1, -(2**31), 255, 256])
def test_integers_round_trip_in_minimal_form(value: int) -> None:
    encoded = ber.integer(value)
    assert encoded == pyasn1_encoder.encode(rfc1902.Integer(value))
    assert ber.read_int(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize("broken", [b"", b"\x30", b"\x30\x05\x02\x01", b"\x30\x84\xff\xff\xff\xff\x02", b"\x04\x01a"])
def test_malformed_datagrams_raise_ber_error(broken: bytes) -> None:
    with pytest.raises(ber.BerError):
        ber.read_v2c(broken)
    assert ber.message_id(broken) is None


def test_rfc3414_key_localization_vectors() -> None:
    """RFC 3414 A.3.1 (MD5) and A.3.2 (SHA): passphrase "maplesyrup", engine ID 00..02."""
    engine = bytes.fromhex("000000000000000000000002")
    ku_md5 = usm.password_to_key(b"maplesyrup", "md5")
    assert ku_md5.hex() == "9faf3283884e92834ebc9847d8edd963"
    assert usm.localize(ku_md5, engine, "md5").hex() == "526f5eed9fcce26f8964c2930787d82b"
    ku_sha = usm.password_to_key(b"maplesyrup", "sha")
    assert ku_sha.hex() == "9fb5cc0381497b3793528939ff788d5d79145211"
    assert usm.localize(ku_sha, engine, "sha").hex() == "6695febc9288e36282235fc7151f128497b38f3f"


def test_unknown_protocols_and_priv_without_auth_are_refused() -> None:
    with pytest.raises(DeviceError, match="auth protocol 'sha1024'"):
        V3Auth("u", "authkey12", None, "sha1024")
    with pytest.raises(DeviceError, match="privacy protocol 'rot13'"):
        V3Auth("u", "authkey12", "privkey12", "sha", "rot13")
    with pytest.raises(DeviceError, match="needs an auth key"):
        V3Auth("u", None, "privkey12")


# ---------------------------------------------------------------- against real agents
@pytest.fixture(scope="module")
def cpdu(snmprec_dir: Path) -> Iterator[SnmpSim]:
    with SnmpSim([snmprec_dir / "apc-cpdu.snmprec", snmprec_dir / "apc-ap7900.snmprec"]) as sim:
        yield sim


@pytest.mark.integration
async def test_v2c_get_walk_and_set_against_snmpsim(cpdu: SnmpSim) -> None:
    session = SnmpSession("127.0.0.1", port=cpdu.port, community="apc-cpdu", timeout=3.0)
    got = await session.get(["1.3.6.1.2.1.1.2.0", "1.3.6.1.4.1.318.1.1.32.2.4.1.4.1", "1.3.6.1.4.1.318.9.9.9.0"])
    assert got["1.3.6.1.2.1.1.2.0"] == (1, 3, 6, 1, 4, 1, 318, 1, 1, 32, 1)  # apc-cpdu.snmprec line 2
    assert got["1.3.6.1.4.1.318.1.1.32.2.4.1.4.1"] == 258  # .32.2.4.1.4.1|2|258
    assert got["1.3.6.1.4.1.318.9.9.9.0"] is None  # not in the walk: noSuchObject
    names = "1.3.6.1.4.1.318.1.1.32.5.4.1.3"  # pduOutletSwitchedStatusName, 64 rows: three GETBULK rounds
    walked = await session.walk([names, "1.3.6.1.4.1.318.1.1.32.2.4.1.4"])
    assert len(walked[names]) == 64 and walked[names][(1, 2)] == "OUTLET 2"
    assert walked["1.3.6.1.4.1.318.1.1.32.2.4.1.4"] == {(1,): 258}
    small = SnmpSession("127.0.0.1", port=cpdu.port, community="apc-cpdu", timeout=3.0, max_oids=7)
    many = [f"{names}.1.{n}" for n in range(1, 65)]  # 64 OIDs in requests of 7, sent together
    assert (await small.get(many)) == {f"{names}.1.{n}": walked[names][(1, n)] for n in range(1, 65)}
    with pytest.raises(DeviceError):  # a recording is read-only: snmpsim refuses the SET (notWritable)
        await SnmpSession("127.0.0.1", port=cpdu.port, community="apc-ap7900").set_int(
            "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.1", 2)


@pytest.mark.integration
async def test_errors_say_what_happened(cpdu: SnmpSim) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(DeviceUnreachable, match="connection refused"):  # nothing on the port: ICMP unreachable
        await SnmpSession("127.0.0.1", port=port, timeout=2.0, retries=3).get(["1.3.6.1.2.1.1.2.0"])
    with pytest.raises(DeviceUnreachable, match=r"no SNMP answer in 0.3 s \(2 tries\): wrong community"):
        await SnmpSession("127.0.0.1", port=cpdu.port, community="nobody", timeout=0.3).get(["1.3.6.1.2.1.1.2.0"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # a socket that reads and never answers
        silent.bind(("127.0.0.1", 0))
        session = SnmpSession("127.0.0.1", port=silent.getsockname()[1], timeout=0.2, retries=0)
        with pytest.raises(DeviceUnreachable, match=r"no SNMP answer in 0.2 s \(1 try\)"):
            await session.get(["1.3.6.1.2.1.1.2.0"])


V3_CASES = [("sha", "aes"), ("md5", "des"), ("sha256", "aes256"), ("sha512", "aes192"), ("sha", "3des"),
            ("sha224", "none"), ("none", "none")]  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize(("auth_proto", "priv_proto"), V3_CASES)
async def test_v3_every_protocol_pair_against_snmpsim(snmprec_dir: Path, auth_proto: str, priv_proto: str) -> None:
    auth_key = "kuat-auth-pass" if auth_proto != "none" else None
    priv_key = "kuat-priv-pass" if priv_proto != "none" else None
    args = ["--v3-user=kuat"]  # snmpsim refuses a protocol NONE spelt out: a missing key means none
    args += [f"--v3-auth-proto={auth_proto.upper()}", f"--v3-auth-key={auth_key}"] if auth_key else []
    args += [f"--v3-priv-proto={priv_proto.upper()}", f"--v3-priv-key={priv_key}"] if priv_key else []
    with SnmpSim([snmprec_dir / "apc-cpdu.snmprec"], v3_args=args) as sim:
        good = V3Auth("kuat", auth_key, priv_key, auth_proto, priv_proto, context="apc-cpdu")
        session = SnmpSession("127.0.0.1", port=sim.port, v3=good, timeout=3.0)
        got = await session.get(["1.3.6.1.4.1.318.1.1.32.2.4.1.4.1"])
        assert got == {"1.3.6.1.4.1.318.1.1.32.2.4.1.4.1": 258}  # .32.2.4.1.4.1|2|258
        walked = await session.walk(["1.3.6.1.4.1.318.1.1.32.5.4.1.3"])
        assert walked["1.3.6.1.4.1.318.1.1.32.5.4.1.3"][(1, 2)] == "OUTLET 2"
        if auth_key:
            wrong = V3Auth("kuat", "not-the-key", priv_key, auth_proto, priv_proto, context="apc-cpdu")
            with pytest.raises(DeviceError, match="wrong SNMPv3 auth key"):
                await SnmpSession("127.0.0.1", port=sim.port, v3=wrong, timeout=1.0, retries=0).get(
                    ["1.3.6.1.2.1.1.2.0"])
        stranger = V3Auth("somebody", auth_key, priv_key, auth_proto, priv_proto, context="apc-cpdu")
        with pytest.raises(DeviceError, match="unknown SNMPv3 user"):
            await SnmpSession("127.0.0.1", port=sim.port, v3=stranger, timeout=1.0, retries=0).get(
                ["1.3.6.1.2.1.1.2.0"])


@pytest.mark.integration
async def test_answers_are_paired_by_request_id_under_concurrency(cpdu: SnmpSim) -> None:
    session = SnmpSession("127.0.0.1", port=cpdu.port, community="apc-cpdu", timeout=3.0)
    oids = [f"1.3.6.1.4.1.318.1.1.32.5.4.1.3.1.{n}" for n in range(1, 65)]
    answers = await asyncio.gather(*(session.get([oid]) for oid in oids))
    assert [a[oid] for a, oid in zip(answers, oids, strict=True)][:3] == ["Test Name", "OUTLET 2", "OUTLET 3"]
