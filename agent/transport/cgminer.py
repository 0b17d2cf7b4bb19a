"""The cgminer-family RPC (bmminer, btminer, LUXminer, BOSminer, Avalon) over TCP 4028.

One request per connection: send `{"command": ..., "parameter": ...}`, read until the NUL byte or EOF.
`multi()` asks for several commands in one connection (`summary+pools`) and falls back to one connection per
command when the firmware refuses multi-commands (some Whatsminer and S19 firmware do); the caller may remember
the outcome through `RpcClient.multi_supported`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from agent.errors import DeviceError, DeviceUnreachable
from agent.transport.jsonfix import BrokenReply, loads_tolerant

log = logging.getLogger(__name__)

DEFAULT_PORT = 4028
MAX_REPLY_BYTES = 2 * 1024 * 1024


class RpcError(DeviceError):
    """The firmware answered with STATUS E/F (invalid command, access denied, ...)."""

    def __init__(self, command: str, code: int | None, msg: str) -> None:
        super().__init__(f"{command}: {msg} (code {code})")
        self.command = command
        self.code = code
        self.msg = msg


def reply_status(reply: dict[str, Any]) -> tuple[str, int | None, str]:
    """(status letter, code, message) of a reply; Whatsminer puts STATUS as a string at top level."""
    status = reply.get("STATUS")
    if isinstance(status, list) and status and isinstance(status[0], dict):
        first = status[0]
        return str(first.get("STATUS", "")), first.get("Code"), str(first.get("Msg", ""))
    if isinstance(status, str):
        msg = reply.get("Msg", "")
        return status, reply.get("Code"), msg if isinstance(msg, str) else json.dumps(msg)
    return "", None, ""


def check_reply(command: str, reply: Any) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise DeviceError(f"{command}: reply is not a JSON object")
    status, code, msg = reply_status(reply)
    if status in ("E", "F"):
        raise RpcError(command, code, msg)
    return reply


class RpcClient:
    """RPC to one miner. Cheap: holds no connection, only the address and what it learnt about multi-commands."""

    def __init__(self, ip: str, port: int = DEFAULT_PORT, timeout: float = 5.0) -> None:
        self.ip = ip
        self.port = port
        self.timeout = timeout
        self.multi_supported: bool | None = None

    async def raw(self, payload: dict[str, Any]) -> bytes:
        """Send one request, return the reply bytes (NUL stripped). Raises DeviceUnreachable on any I/O failure."""
        try:
            return await asyncio.wait_for(self._exchange(json.dumps(payload).encode()), self.timeout)
        except TimeoutError as exc:
            raise DeviceUnreachable(f"{self.ip}:{self.port} timed out after {self.timeout}s") from exc
        except ConnectionRefusedError as exc:
            raise DeviceUnreachable(f"{self.ip}:{self.port}: connection refused") from exc
        except ConnectionResetError as exc:
            raise DeviceUnreachable(f"{self.ip}:{self.port}: connection reset") from exc
        except OSError as exc:
            raise DeviceUnreachable(f"{self.ip}:{self.port}: {exc.strerror or exc}") from exc

    async def _exchange(self, request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(self.ip, self.port)
        try:
            writer.write(request)
            await writer.drain()
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if chunk.endswith(b"\x00") or size > MAX_REPLY_BYTES:
                    break
        finally:
            writer.close()
        data = b"".join(chunks)
        if not data:
            raise DeviceUnreachable(f"{self.ip}:{self.port} closed the connection without a reply")
        return data.rstrip(b"\x00")

    async def command(self, command: str, parameter: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"command": command}
        if parameter is not None:
            payload["parameter"] = parameter
        data = await self.raw(payload)
        try:
            return check_reply(command, loads_tolerant(data))
        except BrokenReply as exc:
            raise DeviceError(f"{self.ip} {command}: {exc}") from exc

    async def multi(self, commands: list[str]) -> dict[str, dict[str, Any]]:
        """Several read commands; one connection when the firmware allows it. Failed single commands are omitted."""
        if len(commands) > 1 and self.multi_supported is not False:
            replies = await self._try_multi(commands)
            if replies is not None:
                self.multi_supported = True
                return replies
            self.multi_supported = False
            log.debug("%s refuses multi-commands; using single commands", self.ip)
        return await self._singles(commands)

    async def _try_multi(self, commands: list[str]) -> dict[str, dict[str, Any]] | None:
        joined = "+".join(commands)
        data = await self.raw({"command": joined})
        try:
            reply = loads_tolerant(data)
        except BrokenReply:
            return None
        if not isinstance(reply, dict) or not any(isinstance(reply.get(c), list) for c in commands):
            return None  # an error reply ("Invalid command", "Missing JSON 'command'")
        out: dict[str, dict[str, Any]] = {}
        for cmd in commands:
            part = reply.get(cmd)
            if isinstance(part, list) and part and isinstance(part[0], dict):
                status, _, _ = reply_status(part[0])
                if status not in ("E", "F"):
                    out[cmd] = part[0]
        return out

    async def _singles(self, commands: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for cmd in commands:
            try:
                out[cmd] = await self.command(cmd)
            except RpcError as exc:
                log.debug("%s: %s", self.ip, exc)
        return out
