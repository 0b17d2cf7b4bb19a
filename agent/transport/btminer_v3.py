"""Whatsminer API v3 (btminer firmware from about 2024.11 on): TCP 4433, 4-byte little-endian length + JSON.

Requests are `{"cmd": ..., "param": ...}`; `set.*` ones add `ts`, `account` and `token` = the first 8 characters of
base64(sha256(cmd + password + salt + ts)) with the salt from `get.device.info` param "salt" (learnt from pyasic's
BTMinerV3RPCAPI and iaon/ya-whatsminer-cli, API v3.0.1). Replies are `{"code": 0, "msg": ..., "desc": cmd}`;
a non-zero code is an error. The client keeps one connection open and, when the miner closed it, sends again
once on a new one (a miner that answers one request per connection costs a connect per command, nothing more).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import time
from typing import Any

from agent.errors import DeviceError, DeviceUnreachable

DEFAULT_PORT = 4433
MAX_REPLY_BYTES = 4 * 1024 * 1024


def v3_token(cmd: str, password: str, salt: str, ts: int) -> str:
    return base64.b64encode(hashlib.sha256(f"{cmd}{password}{salt}{ts}".encode()).digest()).decode()[:8]


class V3Error(DeviceError):
    def __init__(self, cmd: str, code: Any, msg: Any) -> None:
        super().__init__(f"{cmd}: {msg} (code {code})")
        self.code = code


class V3Client:
    def __init__(self, ip: str, port: int = DEFAULT_PORT, timeout: float = 5.0, *, account: str = "super",
                 password: str = "super") -> None:
        self.ip, self.port, self.timeout = ip, port, timeout
        self.account, self.password = account, password
        self.salt: str | None = None
        self.connects = 0
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def _exchange(self, payload: bytes) -> bytes:
        for attempt in (1, 2):
            fresh = self._conn is None
            if self._conn is None:
                self._conn = await asyncio.open_connection(self.ip, self.port)
                self.connects += 1
            reader, writer = self._conn
            try:
                writer.write(struct.pack("<I", len(payload)) + payload)
                await writer.drain()
                length = struct.unpack("<I", await reader.readexactly(4))[0]
                if length > MAX_REPLY_BYTES:
                    raise DeviceError(f"{self.ip}:{self.port}: reply of {length} bytes refused")
                return await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def call(self, cmd: str, param: Any = None) -> Any:
        """One command; its `msg` on success. `set.*` commands are signed (the salt is fetched once)."""
        body: dict[str, Any] = {"cmd": cmd}
        if param is not None:
            body["param"] = param
        if cmd.startswith("set."):
            salt = await self._salt()
            ts = int(time.time())
            body.update(ts=ts, account=self.account, token=v3_token(cmd, self.password, salt, ts))
        reply = await self._request(cmd, body)
        if reply.get("code") != 0:
            raise V3Error(cmd, reply.get("code"), reply.get("msg"))
        return reply.get("msg")

    async def _salt(self) -> str:
        if self.salt is None:
            msg = await self.call("get.device.info", "salt")
            salt = msg.get("salt") if isinstance(msg, dict) else None
            if not isinstance(salt, str):
                raise DeviceError(f"{self.ip}: get.device.info gave no salt")
            self.salt = salt
        return self.salt

    async def _request(self, cmd: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._lock:
                raw = await asyncio.wait_for(self._exchange(json.dumps(body).encode()), self.timeout)
        except TimeoutError as exc:
            await self.close()
            raise DeviceUnreachable(f"{self.ip}:{self.port} timed out after {self.timeout}s") from exc
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise DeviceUnreachable(f"{self.ip}:{self.port}: {exc}") from exc
        try:
            reply = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DeviceError(f"{self.ip} {cmd}: reply is not JSON: {exc}") from exc
        if not isinstance(reply, dict):
            raise DeviceError(f"{self.ip} {cmd}: reply is not a JSON object")
        return reply

    async def close(self) -> None:
        if self._conn is not None:
            _, writer = self._conn
            self._conn = None
            writer.close()
