"""Braiins OS+ control through its public REST API (port 80): power targets, pause/resume and hash boards.

`POST /api/v1/auth/login` gives a token (sent as the `authorization` header, no "Bearer"), kept until an HTTP 401
asks for a new one (then the order is sent once more). `PUT /api/v1/performance/power-target {"watt": N}` retunes
without a reboot; `PUT /api/v1/actions/pause` / `resume` stop and start hashing; `POST /api/v1/hashboards/enable`
switches single boards (ids from 1). pyasic 0.79 sets a Braiins power target by reading and rewriting the whole
config (gRPC or SSH); this is one PUT on a kept connection (agent/transport/http.py). Factory login root with an
empty password unless configured (the simulator's default is the stock Antminer's root/root).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agent.control.base import Control, Target
from agent.drivers.parsers import Reading
from agent.errors import DeviceError
from agent.transport.http import Reply, WebClient, json_object, loads_reply

log = logging.getLogger(__name__)


class BraiinsControl(Control):
    name = "braiins-rest"

    def __init__(self, target: Target, **_: Any) -> None:
        super().__init__(target)
        self.base = f"http://{target.ip}:{target.web_port}/api/v1"
        self.user, self.password = target.username or "root", target.password or ""
        self.token: str | None = None
        self.logins = 0
        self.web = WebClient(target.ip, port=target.web_port, timeout_s=target.timeout)
        self._lock = asyncio.Lock()

    async def _send(self, method: str, path: str, body: Any = None, token: str | None = None) -> Reply:
        return await self.web.request(method, f"/api/v1{path}", body, {"authorization": token} if token else None)

    async def _login(self) -> str:
        response = await self._send("POST", "/auth/login", {"username": self.user, "password": self.password})
        if response.status != 200:
            raise DeviceError(f"{self.ip}: Braiins login refused (HTTP {response.status})")
        token = json_object(f"{self.base}/auth/login", response).get("token")
        if not isinstance(token, str) or not token:
            raise DeviceError(f"{self.ip}: Braiins login gave no token")
        self.logins += 1
        return token

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        for attempt in (1, 2):
            async with self._lock:
                if self.token is None:
                    self.token = await self._login()
                token = self.token
            response = await self._send(method, path, body, token)
            if response.status == 401 and attempt == 1:
                self.token = None  # expired: log in again, send once more
                continue
            if response.status != 200:
                text = response.content[:200].decode("utf-8", "replace")
                raise DeviceError(f"{self.ip} {method} {path}: HTTP {response.status} {text}")
            return loads_reply(f"{self.base}{path}", response)
        raise AssertionError("unreachable")

    async def sleep(self) -> None:
        await self.call("PUT", "/actions/pause")

    async def wake(self) -> None:
        await self.call("PUT", "/actions/resume")

    async def reboot(self) -> None:
        await self.call("PUT", "/actions/reboot")

    async def set_power_target(self, watts: float, identity: Reading) -> None:
        await self.call("PUT", "/performance/power-target", {"watt": int(watts)})
        log.info("%s: Braiins power target %d W", self.ip, int(watts))

    async def set_boards(self, enabled: list[int], identity: Reading) -> None:
        """Boards by index from 0 (Kuat's `Board.index`); the API numbers them from 1."""
        boards = (await self.call("GET", "/hashboards")).get("hashboards", [])
        ids = [int(b["id"]) - 1 for b in boards if isinstance(b, dict) and str(b.get("id", "")).isdigit()]
        on = [i for i in ids if i in enabled]
        off = [i for i in ids if i not in enabled]
        for flag, group in ((True, on), (False, off)):
            if group:
                await self.call("POST", "/hashboards/enable",
                                {"enable": flag, "hashboard_ids": [str(i + 1) for i in group]})

    async def details(self) -> dict[str, Any]:
        reply = await self.call("GET", "/miner/details")
        return reply if isinstance(reply, dict) else {}

    async def close(self) -> None:
        await self.web.close()


def braiins_control(target: Target, **kwargs: Any) -> Control:
    return BraiinsControl(target, **kwargs)
