"""HTTP with digest auth (the stock Antminer web API on port 80: /cgi-bin/*.cgi, default root/root)."""

from __future__ import annotations

from typing import Any

import httpx

from agent.errors import DeviceError, DeviceUnreachable
from agent.transport.jsonfix import BrokenReply, loads_tolerant

DEFAULT_PORT = 80


async def get_json(
    ip: str, path: str, *, port: int = DEFAULT_PORT, user: str = "root", password: str = "root", timeout_s: float = 5.0
) -> dict[str, Any]:
    """GET http://ip:port/path with digest auth and decode its (possibly broken) JSON object."""
    url = f"http://{ip}:{port}{path}"
    try:
        # plain HTTP: verify=False spares loading the CA bundle (tens of ms of CPU per client)
        async with httpx.AsyncClient(auth=httpx.DigestAuth(user, password), timeout=timeout_s, verify=False) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise DeviceUnreachable(f"{url}: {exc.__class__.__name__} {exc}") from exc
    return json_object(url, response)


def json_object(url: str, response: httpx.Response) -> dict[str, Any]:
    """A miner's web reply as a JSON object, or the DeviceError that says what was wrong with it."""
    if response.status_code == 401:
        raise DeviceError(f"{url}: credentials refused (HTTP 401)")
    if response.status_code != 200:
        raise DeviceError(f"{url}: HTTP {response.status_code}")
    try:
        data = loads_tolerant(response.content)
    except BrokenReply as exc:
        raise DeviceError(f"{url}: {exc}") from exc
    if not isinstance(data, dict):
        raise DeviceError(f"{url}: reply is not a JSON object")
    return data


class WebClient:
    """One miner's web API with its connection and digest challenge kept between requests (control paths: a
    setpoint is one POST, not a new client, a 401 challenge and a POST)."""

    def __init__(self, ip: str, *, port: int = DEFAULT_PORT, user: str = "root", password: str = "root",
                 timeout_s: float = 5.0) -> None:
        self.base = f"http://{ip}:{port}"
        self._auth = httpx.DigestAuth(user, password)
        self._timeout = timeout_s
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(auth=self._auth, timeout=self._timeout, verify=False)
        return self._client

    async def request_json(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        url = f"{self.base}{path}"
        try:
            response = await self._http().request(method, url, json=body)
        except httpx.HTTPError as exc:
            await self.close()  # a dropped connection: the next request opens a new one
            raise DeviceUnreachable(f"{url}: {exc.__class__.__name__} {exc}") from exc
        return json_object(url, response)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
