"""A minimal HTTP/1.1 server side for the simulated miners' web APIs: one request per connection, digest auth.

A real web framework per miner would not fit 1,000 miners on two cores; the miners' web APIs need only GET/POST,
a JSON body and RFC 7616 digest authentication (MD5, qop=auth), as the Antminer's lighttpd does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

MAX_HEADER = 16 * 1024
MAX_BODY = 256 * 1024
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           413: "Payload Too Large"}


class BadRequest(Exception):
    pass


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else {}


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Error')}",
                 f"Content-Type: {self.content_type}", f"Content-Length: {len(self.body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def json_response(obj: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, json.dumps(obj, separators=(",", ":")).encode())


def text_response(status: int, text: str, content_type: str = "text/html") -> HttpResponse:
    return HttpResponse(status, text.encode(), content_type)


async def read_request(reader: asyncio.StreamReader, limit_s: float = 10.0) -> HttpRequest:
    """Read one request (headers and a Content-Length body), bounded in size and time."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), limit_s)
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("headers too large") from exc
    except asyncio.IncompleteReadError as exc:
        raise BadRequest("connection closed before the headers ended") from exc
    if len(head) > MAX_HEADER:
        raise BadRequest("headers too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest(f"bad request line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length < 0 or length > MAX_BODY:
        raise BadRequest("body too large")
    body = await asyncio.wait_for(reader.readexactly(length), limit_s) if length else b""
    return HttpRequest(parts[0].upper(), parts[1], headers, body)


# ------------------------------------------------------------------ digest authentication (RFC 7616, MD5, qop=auth)
def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_challenge(realm: str) -> str:
    nonce = secrets.token_hex(16)
    return f'Digest realm="{realm}", nonce="{nonce}", qop="auth", algorithm=MD5'


def parse_digest(header: str) -> dict[str, str]:
    if not header.lower().startswith("digest "):
        return {}
    out: dict[str, str] = {}
    for part in _split_params(header[7:]):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip().lower()] = v.strip().strip('"')
    return out


def _split_params(text: str) -> list[str]:
    """Split `a="x, y", b=z` on the commas outside quotes."""
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def digest_ok(req: HttpRequest, realm: str, user: str, password: str) -> bool:
    """Does the request carry a valid digest response for user/password? (Any nonce we could have issued.)"""
    p = parse_digest(req.headers.get("authorization", ""))
    if not p or p.get("username") != user or p.get("realm") != realm:
        return False
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{req.method}:{p.get('uri', '')}")
    if p.get("qop") == "auth":
        expected = _md5(f"{ha1}:{p.get('nonce', '')}:{p.get('nc', '')}:{p.get('cnonce', '')}:auth:{ha2}")
    else:
        expected = _md5(f"{ha1}:{p.get('nonce', '')}:{ha2}")
    return secrets.compare_digest(expected, p.get("response", ""))
