"""The HTTP transport of `registry.contract.v1.DpcPort`: the national registry's DPC API over httpx.

Errors are mapped once, here, at the boundary: an OS or network error, a timeout, a 5xx, 408, 425 or 429 is
`PortUnavailable` (try again later; the outbox keeps the submission), any other 4xx is `PortRefused` (kept for an
operator, never resent), an answer that does not parse as the contract says is `PortUnavailable` too (a proxy's
error page, a registry half upgraded) so nothing is lost on it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from registry.contract import v1 as c

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 425, 429})
M = TypeVar("M", bound=BaseModel)


def read_key(path: Path) -> str:
    """A DPC key from its file (first line, stripped); refused when empty."""
    token = path.read_text().strip().splitlines()[0].strip() if path.is_file() else ""
    if not token:
        raise ValueError(f"registry key file {path} is missing or empty")
    return token


class HttpDpcPort:
    """`DpcPort` over HTTP: `POST/GET {url}/api/v1/dpc/...` with `Authorization: Bearer <dpc key>`."""

    def __init__(self, url: str, key: str, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None
                 ) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport,
                                    headers={"Authorization": f"Bearer {key}", "Accept": "application/json"})

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, model: type[M], body: BaseModel | None = None,
              key: str | None = None, params: dict[str, int] | None = None) -> M:
        headers = {"Idempotency-Key": key} if key else {}
        content = body.model_dump_json().encode() if body is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self._client.request(method, path, content=content, headers=headers, params=params)
        except (httpx.TransportError, OSError) as exc:  # connect refused, reset, timeout, DNS
            raise c.PortUnavailable(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status >= 500 or status in RETRYABLE:
            raise c.PortUnavailable(f"{method} {self.url}{path}: HTTP {status}")
        if status >= 400:
            raise c.PortRefused(status, _detail(response))
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise c.PortUnavailable(f"{method} {self.url}{path}: answer is not a {model.__name__}: "
                                    f"{exc.errors()[:1]}") from exc

    def submit_sightings(self, dpc: str, batch: c.SightingBatch, idempotency_key: str) -> c.SightingReceipt:
        return self._call("POST", f"/api/v1/dpc/{dpc}/sightings", c.SightingReceipt, batch, idempotency_key)

    def submit_applications(self, dpc: str, batch: c.ApplicationBatch, idempotency_key: str
                            ) -> c.ApplicationReceipt:
        return self._call("POST", f"/api/v1/dpc/{dpc}/applications", c.ApplicationReceipt, batch, idempotency_key)

    def submit_allowance(self, dpc: str, allowance: c.AllowanceIn, idempotency_key: str) -> c.AllowanceOut:
        return self._call("POST", f"/api/v1/dpc/{dpc}/allowances", c.AllowanceOut, allowance, idempotency_key)

    def feed(self, dpc: str, after: int, limit: int = 1000) -> c.FeedPage:
        return self._call("GET", f"/api/v1/dpc/{dpc}/feed", c.FeedPage, params={"after": after, "limit": limit})

    def whoami(self) -> c.DpcBinding:
        return self._call("GET", "/api/v1/dpc/whoami", c.DpcBinding)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:300]
