"""SNMPv3 with the User-based Security Model (RFC 3412 message format, RFC 3414 USM), on the codec in `ber`.

What a manager needs and no more: discovery of the agent's engine ID, boots and time (a noAuthNoPriv probe that
the agent answers with a Report); keys from passphrases (RFC 3414 password-to-key, localized to the engine ID, kept
per process: the 1 MB hash costs milliseconds); HMAC authentication (MD5 and SHA-1 RFC 3414, SHA-2 RFC 7860);
privacy DES-CBC (RFC 3414), AES-128-CFB (RFC 3826), and 3DES / AES-192 / AES-256 with the key extension of the
Reeder draft, which is what Net-SNMP, Cisco and pysnmp (and so snmpsim) call "3DES", "AES192" and "AES256".

`V3Auth` holds the credentials as the agent's config and CLI give them; `UsmState` the per-agent engine facts.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from Crypto.Cipher import AES, DES, DES3

from agent.errors import DeviceError
from agent.transport import ber

AUTH_HASHES: dict[str, tuple[Callable[..., hashlib._Hash], int]] = {  # name -> (hash, HMAC truncation in bytes)
    "md5": (hashlib.md5, 12),
    "sha": (hashlib.sha1, 12),
    "sha224": (hashlib.sha224, 16),
    "sha256": (hashlib.sha256, 24),
    "sha384": (hashlib.sha384, 32),
    "sha512": (hashlib.sha512, 48),
}
PRIV_KEY_BYTES = {"des": 16, "3des": 32, "aes": 16, "aes128": 16, "aes192": 24, "aes256": 32}
AUTH_PROTOCOLS = ("none", *AUTH_HASHES)
PRIV_PROTOCOLS = ("none", *PRIV_KEY_BYTES)

FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 0x01, 0x02, 0x04
MAX_MESSAGE = 65507
USM_MODEL = 3
TIME_WINDOW_S = 150

USM_STATS = "1.3.6.1.6.3.15.1.1."
REPORT_REASONS = {  # usmStats* counters (RFC 3414) and the MPD/target-MIB ones an agent reports
    USM_STATS + "1.0": "the agent does not allow this security level for the user",
    USM_STATS + "2.0": "the agent's clock and ours disagree (not in time window)",
    USM_STATS + "3.0": "unknown SNMPv3 user",
    USM_STATS + "4.0": "unknown engine ID",
    USM_STATS + "5.0": "wrong SNMPv3 auth key or auth protocol",
    USM_STATS + "6.0": "wrong SNMPv3 privacy key or privacy protocol",
    "1.3.6.1.6.3.11.2.1.1.0": "the agent does not support the USM security model",
    "1.3.6.1.6.3.11.2.1.3.0": "the agent has no handler for this request",
    "1.3.6.1.6.3.12.1.4.0": "SNMPv3 context unavailable",
    "1.3.6.1.6.3.12.1.5.0": "unknown SNMPv3 context name",
}
NOT_IN_TIME_WINDOW = ber.oid_body(USM_STATS + "2.0")
UNKNOWN_ENGINE_ID = ber.oid_body(USM_STATS + "4.0")


class UsmError(DeviceError):
    """The agent refused our SNMPv3 credentials (a Report), or its answer failed authentication."""


@dataclass(frozen=True)
class V3Auth:
    """SNMPv3 USM credentials. Protocols: auth md5|sha|sha224..sha512, priv des|3des|aes|aes192|aes256."""

    user: str
    auth_key: str | None = None
    priv_key: str | None = None
    auth_protocol: str = "sha"
    priv_protocol: str = "aes"
    context: str = ""  # SNMPv3 context name (most PDUs: empty)

    def __post_init__(self) -> None:
        if self.auth_protocol not in AUTH_PROTOCOLS:
            raise DeviceError(f"unknown SNMPv3 auth protocol {self.auth_protocol!r}; known: {', '.join(AUTH_HASHES)}")
        if self.priv_protocol not in PRIV_PROTOCOLS:
            raise DeviceError(
                f"unknown SNMPv3 privacy protocol {self.priv_protocol!r}; known: {', '.join(PRIV_KEY_BYTES)}"
            )
        if self.priv_key and not self.auth_key:
            raise DeviceError("an SNMPv3 privacy key needs an auth key too (authPriv)")

    @property
    def authenticates(self) -> bool:
        return bool(self.auth_key) and self.auth_protocol != "none"

    @property
    def encrypts(self) -> bool:
        return self.authenticates and bool(self.priv_key) and self.priv_protocol != "none"


# ---------------------------------------------------------------- keys
@lru_cache(maxsize=256)
def password_to_key(password: bytes, hash_name: str) -> bytes:
    """RFC 3414 A.2: hash of the passphrase repeated to 1 MB."""
    if not password:
        raise DeviceError("an empty SNMPv3 passphrase")
    hasher, _ = AUTH_HASHES[hash_name]
    stream = password * (1_048_576 // len(password) + 1)
    return hasher(stream[:1_048_576]).digest()


def localize(key: bytes, engine_id: bytes, hash_name: str) -> bytes:
    hasher, _ = AUTH_HASHES[hash_name]
    return hasher(key + engine_id + key).digest()


@lru_cache(maxsize=256)
def localized_keys(auth: V3Auth, engine_id: bytes) -> tuple[bytes, bytes]:
    """(auth key, privacy key) for this engine; the privacy key extended to its protocol's length (Reeder)."""
    if not auth.authenticates:
        return b"", b""
    name = auth.auth_protocol
    auth_key = localize(password_to_key(auth.auth_key.encode(), name), engine_id, name)  # type: ignore[union-attr]
    if not auth.encrypts:
        return auth_key, b""
    priv = localize(password_to_key(auth.priv_key.encode(), name), engine_id, name)  # type: ignore[union-attr]
    need = PRIV_KEY_BYTES[auth.priv_protocol]
    while len(priv) < need:
        priv += localize(password_to_key(priv, name), engine_id, name)
    return auth_key, priv[:need]


# ---------------------------------------------------------------- privacy
def encrypt(protocol: str, key: bytes, boots: int, engine_time: int, plain: bytes, salt: int) -> tuple[bytes, bytes]:
    """(ciphertext, msgPrivacyParameters)."""
    if protocol in ("des", "3des"):
        salt_bytes = boots.to_bytes(4, "big") + (salt & 0xFFFFFFFF).to_bytes(4, "big")
        pre_iv = key[8:16] if protocol == "des" else key[24:32]
        iv = bytes(a ^ b for a, b in zip(pre_iv, salt_bytes, strict=True))
        padded = plain + b"\x00" * (-len(plain) % 8)
        cipher = DES.new(key[:8], DES.MODE_CBC, iv) if protocol == "des" else DES3.new(key[:24], DES3.MODE_CBC, iv)
        return cipher.encrypt(padded), salt_bytes
    salt_bytes = (salt & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt_bytes
    return AES.new(key, AES.MODE_CFB, iv, segment_size=128).encrypt(plain), salt_bytes


def decrypt(protocol: str, key: bytes, boots: int, engine_time: int, data: bytes, params: bytes) -> bytes:
    if len(params) != 8:
        raise UsmError("bad msgPrivacyParameters in the answer")
    if protocol in ("des", "3des"):
        if len(data) % 8:
            raise UsmError("encrypted PDU is not a multiple of 8 bytes")
        pre_iv = key[8:16] if protocol == "des" else key[24:32]
        iv = bytes(a ^ b for a, b in zip(pre_iv, params, strict=True))
        cipher = DES.new(key[:8], DES.MODE_CBC, iv) if protocol == "des" else DES3.new(key[:24], DES3.MODE_CBC, iv)
        return bytes(cipher.decrypt(data))
    iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + params
    return bytes(AES.new(key, AES.MODE_CFB, iv, segment_size=128).decrypt(data))


# ---------------------------------------------------------------- messages
@dataclass
class UsmState:
    """What a manager learns of one agent's engine (discovery, and every authenticated answer after it)."""

    engine_id: bytes = b""
    boots: int = 0
    engine_time: int = 0
    synced_at: float = field(default_factory=time.monotonic)
    salt: int = field(default_factory=lambda: int.from_bytes(os.urandom(8), "big"))

    def now(self) -> int:
        return min(self.engine_time + int(time.monotonic() - self.synced_at), 2**31 - 1)

    def sync(self, boots: int, engine_time: int) -> None:
        self.boots, self.engine_time, self.synced_at = boots, engine_time, time.monotonic()

    def next_salt(self) -> int:
        self.salt = (self.salt + 1) & 0xFFFFFFFFFFFFFFFF
        return self.salt


def discovery_message(msg_id: int) -> bytes:
    """An empty noAuthNoPriv GET (RFC 3414 4): the agent answers with a Report carrying its engine ID/boots/time."""
    scoped = ber.tlv(ber.SEQUENCE, ber.octets(b"") + ber.octets(b"") + ber.pdu(ber.GET, msg_id, 0, 0, b""))
    params = ber.tlv(ber.SEQUENCE, ber.octets(b"") + ber.integer(0) + ber.integer(0) + ber.octets(b"") * 3)
    return _message(msg_id, FLAG_REPORTABLE, params, scoped)


def _message(msg_id: int, flags: int, security: bytes, data: bytes) -> bytes:
    header = ber.integer(msg_id) + ber.integer(MAX_MESSAGE) + ber.octets(bytes((flags,))) + ber.integer(USM_MODEL)
    global_data = ber.tlv(ber.SEQUENCE, header)
    return ber.tlv(ber.SEQUENCE, b"\x02\x01\x03" + global_data + ber.octets(security) + data)


def request_message(auth: V3Auth, state: UsmState, msg_id: int, pdu: bytes) -> bytes:
    """A request carrying `pdu` (encoded by ber.pdu), authenticated and encrypted as `auth` says."""
    auth_key, priv_key = localized_keys(auth, state.engine_id)
    boots, engine_time = state.boots, state.now()
    scoped = ber.tlv(ber.SEQUENCE, ber.octets(state.engine_id) + ber.octets(auth.context.encode()) + pdu)
    flags = FLAG_REPORTABLE
    priv_params = b""
    if auth.encrypts:
        scoped, priv_params = encrypt(auth.priv_protocol, priv_key, boots, engine_time, scoped, state.next_salt())
        scoped = ber.octets(scoped)
        flags |= FLAG_PRIV
    mac_len = AUTH_HASHES[auth.auth_protocol][1] if auth.authenticates else 0
    if mac_len:
        flags |= FLAG_AUTH
    head = ber.octets(state.engine_id) + ber.integer(boots) + ber.integer(engine_time) + ber.octets(auth.user.encode())
    tail = ber.octets(priv_params)
    params = ber.tlv(ber.SEQUENCE, head + ber.octets(b"\x00" * mac_len) + tail)
    message = _message(msg_id, flags, params, scoped)
    if not mac_len:
        return message
    # the placeholder's position: the message ends with [mac TLV][priv TLV][scoped data]
    mac_end = len(message) - len(scoped) - len(tail)
    hasher = AUTH_HASHES[auth.auth_protocol][0]
    mac = hmac.new(auth_key, message, hasher).digest()[:mac_len]
    return message[: mac_end - mac_len] + mac + message[mac_end:]


@dataclass
class Answer:
    msg_id: int
    pdu: ber.Pdu


def read_answer(buf: bytes, auth: V3Auth, state: UsmState) -> Answer:
    """Parse (and check and decrypt) an SNMPv3 answer; a Report raises UsmError naming why, after updating
    `state` from it (discovery and time-window reports carry the agent's engine ID, boots and time)."""
    start, _ = ber.expect(buf, 0, ber.SEQUENCE)
    version, p = ber.read_int(buf, start)
    if version != 3:
        raise ber.BerError(f"SNMP version {version} answer to an SNMPv3 request")
    g_start, p = ber.expect(buf, p, ber.SEQUENCE)
    msg_id, q = ber.read_int(buf, g_start)
    _, q = ber.read_int(buf, q)
    flags_raw, _ = ber.read_octets(buf, q)
    flags = flags_raw[0] if flags_raw else 0
    sp_start, sp_end = ber.expect(buf, p, ber.OCTETS)
    s, _ = ber.expect(buf, sp_start, ber.SEQUENCE)
    engine_id, s = ber.read_octets(buf, s)
    boots, s = ber.read_int(buf, s)
    engine_time, s = ber.read_int(buf, s)
    _, s = ber.read_octets(buf, s)
    mac_start, mac_end = ber.expect(buf, s, ber.OCTETS)
    priv_params, _ = ber.read_octets(buf, mac_end)
    data_pos = sp_end
    authentic = False
    if flags & FLAG_AUTH:
        if not auth.authenticates:
            raise UsmError("an authenticated answer to an unauthenticated request")
        auth_key, priv_key = localized_keys(auth, engine_id)
        hasher, mac_len = AUTH_HASHES[auth.auth_protocol]
        zeroed = buf[:mac_start] + b"\x00" * (mac_end - mac_start) + buf[mac_end:]
        if not hmac.compare_digest(hmac.new(auth_key, zeroed, hasher).digest()[:mac_len], buf[mac_start:mac_end]):
            raise UsmError("the answer's authentication code is wrong (another auth key?)")
        authentic = True
    if flags & FLAG_PRIV:
        if not authentic or not auth.encrypts:
            raise UsmError("an encrypted answer to an unencrypted request")
        c_start, c_end = ber.expect(buf, data_pos, ber.OCTETS)
        scoped = decrypt(auth.priv_protocol, priv_key, boots, engine_time, buf[c_start:c_end], priv_params)
        data_pos, buf = 0, scoped
    sc_start, _ = ber.expect(buf, data_pos, ber.SEQUENCE)
    _, r = ber.read_octets(buf, sc_start)  # contextEngineID
    _, r = ber.read_octets(buf, r)  # contextName
    pdu = ber.read_pdu(buf, r)
    if pdu.tag == ber.REPORT:
        _report(pdu, state, engine_id, boots, engine_time, authentic)
    elif authentic:
        state.sync(boots, engine_time)
    return Answer(msg_id, pdu)


class Resync(UsmError):
    """Discovery or a time-window report taught us the agent's engine: send the request again."""


def _report(pdu: ber.Pdu, state: UsmState, engine_id: bytes, boots: int, engine_time: int, authentic: bool) -> None:
    oid = pdu.varbinds[0][0] if pdu.varbinds else b""
    if oid == UNKNOWN_ENGINE_ID or (oid == NOT_IN_TIME_WINDOW and (authentic or not state.engine_id)):
        state.engine_id = engine_id
        state.sync(boots, engine_time)
        raise Resync(REPORT_REASONS[USM_STATS + ("4.0" if oid == UNKNOWN_ENGINE_ID else "2.0")])
    text = ber.oid_text(ber.decode_oid(oid)) if oid else "?"
    raise UsmError(REPORT_REASONS.get(text, f"the agent reported {text}"))
