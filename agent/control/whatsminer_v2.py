"""Whatsminer API v2 control: encrypted writes over TCP 4028 with a token cached until it expires.

Protocol (as btminer 2.0.x and pyasic do it): `get_token` gives `time`, `salt` and `newsalt`; key =
md5crypt(password, salt), sign = md5crypt(key + time, newsalt); a write is `{"enc": 1, "data": base64(AES-256-ECB(
sha256(key), json(command + token=sign)))}` and the reply `{"enc": base64(...)}`. Tokens live 30 minutes. pyasic
fetches a new token for every write (two md5crypt derivations and an extra round trip); here one token serves
every write for `TOKEN_REUSE_S`, and a "check token err" reply (Code 135) fetches a new one and retries once.
A new power limit (`adjust_power_limit`) reboots the miner to apply it; `power_off` / `power_on` stop and start
hashing while the control board stays up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from Crypto.Cipher import AES
from passlib.hash import md5_crypt

from agent.control.base import Control, Target
from agent.drivers.parsers import Reading
from agent.errors import DeviceError
from agent.transport.cgminer import RpcClient, check_reply, reply_status
from agent.transport.jsonfix import BrokenReply, loads_tolerant

log = logging.getLogger(__name__)

DEFAULT_PASSWORD = "admin"  # btminer's factory API password
TOKEN_TTL_S = 1800.0
TOKEN_REUSE_S = TOKEN_TTL_S - 120.0  # a token is renewed two minutes before the miner would refuse it
TOKEN_REFUSED = 135


@dataclass(frozen=True, slots=True)
class Token:
    sign: str
    cipher_key: bytes  # sha256 of the md5crypt digest of the password
    fetched: float


def md5crypt_digest(word: str, salt: str) -> str:
    """The digest part of `$1$salt$digest`."""
    return str(md5_crypt.using(salt=salt).hash(word)).split("$")[3]


def make_token(password: str, msg: dict[str, Any], now: float) -> Token:
    key = md5crypt_digest(password, str(msg["salt"]))
    sign = md5crypt_digest(key + str(msg["time"]), str(msg["newsalt"]))
    return Token(sign, hashlib.sha256(key.encode()).digest(), now)


def encrypt_command(token: Token, command: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps({**command, "token": token.sign}, separators=(",", ":")).encode()
    raw += b"\0" * (-len(raw) % 16)
    return {"enc": 1, "data": base64.b64encode(AES.new(token.cipher_key, AES.MODE_ECB).encrypt(raw)).decode()}


def decrypt_reply(token: Token, reply: dict[str, Any]) -> dict[str, Any]:
    """An `{"enc": ...}` reply decrypted; a plain reply (an error before decryption) as it is."""
    data = reply.get("enc")
    if not isinstance(data, str):
        return reply
    try:
        raw = AES.new(token.cipher_key, AES.MODE_ECB).decrypt(base64.b64decode(data)).rstrip(b"\0")
        decoded = loads_tolerant(raw)
    except (ValueError, BrokenReply) as exc:
        raise DeviceError(f"encrypted reply does not decrypt: {exc}") from exc
    if not isinstance(decoded, dict):
        raise DeviceError("encrypted reply is not a JSON object")
    return decoded


class WhatsminerV2Control(Control):
    name = "whatsminer-v2"

    def __init__(self, target: Target, **_: Any) -> None:
        super().__init__(target)
        self.rpc = RpcClient(target.ip, target.rpc_port, target.timeout)
        self.password = target.password or DEFAULT_PASSWORD
        self.token: Token | None = None
        self.tokens_fetched = 0  # bench and tests: one per TOKEN_REUSE_S, not one per command
        self._lock = asyncio.Lock()

    async def _token(self) -> Token:
        async with self._lock:
            if self.token is None or time.monotonic() - self.token.fetched >= TOKEN_REUSE_S:
                reply = check_reply("get_token", loads_tolerant(await self.rpc.raw({"cmd": "get_token"})))
                msg = reply.get("Msg")
                if not isinstance(msg, dict) or not {"salt", "newsalt", "time"} <= set(msg):
                    raise DeviceError(f"{self.ip}: get_token gave no salt/newsalt/time")
                self.token = make_token(self.password, msg, time.monotonic())
                self.tokens_fetched += 1
            return self.token

    async def write(self, command: str, **params: Any) -> dict[str, Any]:
        body = {"cmd": command, **{k: str(v) for k, v in params.items()}}
        for attempt in (1, 2):
            token = await self._token()
            raw = await self.rpc.raw(encrypt_command(token, body))
            try:
                reply = decrypt_reply(token, loads_tolerant(raw))
            except BrokenReply as exc:
                raise DeviceError(f"{self.ip} {command}: {exc}") from exc
            status, code, msg = reply_status(reply)
            if status == "S":
                return reply
            if code == TOKEN_REFUSED and attempt == 1:
                log.info("%s: Whatsminer token refused, fetching a new one", self.ip)
                self.token = None
                continue
            raise DeviceError(f"{self.ip} {command}: {msg} (code {code})")
        raise AssertionError("unreachable")

    async def sleep(self) -> None:
        await self.write("power_off", respbefore="true")

    async def wake(self) -> None:
        await self.write("power_on")

    async def reboot(self) -> None:
        await self.write("reboot")

    async def set_power_target(self, watts: float, identity: Reading) -> None:
        await self.write("adjust_power_limit", power_limit=int(watts))
        log.info("%s: Whatsminer power limit %d W (the miner reboots to apply it)", self.ip, int(watts))


def whatsminer_v2_control(target: Target, **kwargs: Any) -> Control:
    return WhatsminerV2Control(target, **kwargs)
