"""HTTP/1.1 with digest auth for miners' web APIs (the stock Antminer's /cgi-bin/*.cgi on port 80, root/root).

Why not httpx: a setpoint is one small POST, and httpx spent ~2 ms of CPU on each (its request and response
models, auth flow generator, connection pool and h11 state machine), three times the rest of the control path.
A miner's web server needs little of that: GET/POST, a JSON body, a Content-Length, chunked or read-to-close
reply, and RFC 7616 digest (MD5 or SHA-256, qop=auth). This client keeps one connection per miner while the
server allows it, and keeps the digest challenge so a request after the first is a single round trip (the
nonce count grows; a `stale=true` or new challenge is answered once). OS errors, timeouts and broken replies
are mapped here, at the boundary: `DeviceUnreachable` when the miner could not be reached or hung up,
`DeviceError` for a reply that is not HTTP, is refused, or is not a JSON object.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from agent.errors import DeviceError, DeviceUnreachable
from agent.transport.jsonfix import BrokenReply, loads_tolerant

DEFAULT_PORT = 80
MAX_HEADER = 64 * 1024
MAX_BODY = 4 * 1024 * 1024


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    content: bytes


class BadHttp(Exception):
    """The bytes the server sent are not an HTTP/1.x reply."""


async def get_json(
    ip: str, path: str, *, port: int = DEFAULT_PORT, user: str = "root", password: str = "root", timeout_s: float = 5.0
) -> dict[str, Any]:
    """GET http://ip:port/path with digest auth and decode its (possibly broken) JSON object (one request; the
    connection is closed after it)."""
    client = WebClient(ip, port=port, user=user, password=password, timeout_s=timeout_s)
    try:
        return await client.request_json("GET", path)
    finally:
        await client.close()


def json_object(url: str, reply: Reply) -> dict[str, Any]:
    """A miner's web reply as a JSON object, or the DeviceError that says what was wrong with it."""
    if reply.status == 401:
        raise DeviceError(f"{url}: credentials refused (HTTP 401)")
    if reply.status != 200:
        raise DeviceError(f"{url}: HTTP {reply.status}")
    try:
        data = loads_tolerant(reply.content)
    except BrokenReply as exc:
        raise DeviceError(f"{url}: {exc}") from exc
    if not isinstance(data, dict):
        raise DeviceError(f"{url}: reply is not a JSON object")
    return data


def loads_reply(url: str, reply: Reply) -> Any:
    """A reply's JSON body, whatever its shape, or the DeviceError that says it is not JSON."""
    try:
        return loads_tolerant(reply.content)
    except BrokenReply as exc:
        raise DeviceError(f"{url}: {exc}") from exc


# ------------------------------------------------------------------ digest authentication (RFC 7616)
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def parse_challenge(header: str) -> dict[str, str]:
    """`Digest realm="x", nonce="y", qop="auth"` -> {"realm": "x", ...} (commas inside quotes kept); {} if the
    header is not a digest challenge."""
    if header[:7].lower() != "digest ":
        return {}
    out: dict[str, str] = {}
    rest = header[7:]
    while rest:
        key, _, rest = rest.partition("=")
        rest = rest.lstrip()
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
            rest = rest.partition(",")[2]
        else:
            value, _, rest = rest.partition(",")
        out[key.strip().lower()] = value.strip()
        rest = rest.lstrip()
    return out


class Digest:
    """One server's digest challenge and the nonce count under it."""

    def __init__(self, user: str, password: str, challenge: dict[str, str]) -> None:
        algorithm = challenge.get("algorithm", "MD5").upper()
        if algorithm not in _HASHES:
            raise DeviceError(f"digest algorithm {algorithm} is not supported (MD5, SHA-256)")
        self._hash = _HASHES[algorithm]
        self.user, self.algorithm = user, algorithm
        self.realm, self.nonce = challenge.get("realm", ""), challenge.get("nonce", "")
        self.opaque = challenge.get("opaque")
        self.qop = "auth" if "auth" in [q.strip() for q in challenge.get("qop", "").split(",")] else None
        self._ha1 = self._h(f"{user}:{self.realm}:{password}")
        self.count = 0

    def _h(self, text: str) -> str:
        return self._hash(text.encode()).hexdigest()

    def header(self, method: str, uri: str) -> str:
        ha2 = self._h(f"{method}:{uri}")
        parts = [f'username="{self.user}"', f'realm="{self.realm}"', f'nonce="{self.nonce}"', f'uri="{uri}"',
                 f"algorithm={self.algorithm}"]
        if self.qop:
            self.count += 1
            nc, cnonce = f"{self.count:08x}", os.urandom(8).hex()
            response = self._h(f"{self._ha1}:{self.nonce}:{nc}:{cnonce}:auth:{ha2}")
            parts += [f'response="{response}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            parts.append(f'response="{self._h(f"{self._ha1}:{self.nonce}:{ha2}")}"')
        if self.opaque is not None:
            parts.append(f'opaque="{self.opaque}"')
        return "Digest " + ", ".join(parts)


# ------------------------------------------------------------------ one kept connection
async def _read_reply(reader: asyncio.StreamReader, method: str) -> tuple[Reply, bool]:
    """One reply; returns it and whether the connection may carry another request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise BadHttp("reply headers too large") from exc
    lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise BadHttp(f"not an HTTP reply: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    status = int(code)
    keep = headers.get("connection", "").lower() != "close" and version != "HTTP/1.0"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Reply(status, headers, b""), keep
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return Reply(status, headers, await _read_chunked(reader)), keep
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError as exc:
            raise BadHttp(f"bad Content-Length {headers['content-length']!r}") from exc
        if not 0 <= length <= MAX_BODY:
            raise BadHttp(f"Content-Length {length} out of range")
        return Reply(status, headers, await reader.readexactly(length)), keep
    body = await reader.read(MAX_BODY + 1)  # no length: the body ends when the server closes
    while len(body) <= MAX_BODY:
        more = await reader.read(MAX_BODY + 1 - len(body))
        if not more:
            break
        body += more
    if len(body) > MAX_BODY:
        raise BadHttp("reply body too large")
    return Reply(status, headers, body), False


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError as exc:
            raise BadHttp(f"bad chunk size {size_line[:20]!r}") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise BadHttp("reply body too large")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


class WebClient:
    """One miner's web API with its connection and digest challenge kept between requests (control paths: a
    setpoint is one POST, not a new client, a 401 challenge and a POST). Requests on one client are serialised."""

    def __init__(self, ip: str, *, port: int = DEFAULT_PORT, user: str = "root", password: str = "root",
                 timeout_s: float = 5.0) -> None:
        self.ip, self.port = ip, port
        self.base = f"http://{ip}:{port}"
        self._user, self._password = user, password
        self._timeout = timeout_s
        self._digest: Digest | None = None
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()
        self.connections = 0  # opened so far (tests and benches read it)

    async def request_json(self, method: str, path: str, body: Any = None,
                           headers: dict[str, str] | None = None) -> dict[str, Any]:
        return json_object(f"{self.base}{path}", await self.request(method, path, body, headers))

    async def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        """One request (a JSON body if given; `headers` added as given), answered digest challenge included; the
        reply whatever its status. Raises DeviceUnreachable or DeviceError (a reply that is not HTTP)."""
        url = f"{self.base}{path}"
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        extra = "".join(f"\r\n{k}: {v}" for k, v in (headers or {}).items())
        async with self._lock:
            try:
                return await asyncio.wait_for(self._authorised(method, path, payload, extra), self._timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                await self.close()  # a dropped connection: the next request opens a new one
                raise DeviceUnreachable(f"{url}: {exc.__class__.__name__} {exc}".rstrip()) from exc
            except BadHttp as exc:
                await self.close()
                raise DeviceError(f"{url}: {exc}") from exc

    async def _authorised(self, method: str, path: str, payload: bytes, extra: str) -> Reply:
        reply = await self._send(method, path, payload, extra)
        if reply.status != 401:
            return reply
        challenge = parse_challenge(reply.headers.get("www-authenticate", ""))
        if not challenge:
            return reply
        renewed = self._digest is None or challenge.get("stale", "").lower() == "true" or (
            challenge.get("nonce") != self._digest.nonce)
        if not renewed:
            return reply  # the same challenge again: the credentials are wrong
        self._digest = Digest(self._user, self._password, challenge)
        return await self._send(method, path, payload, extra)

    async def _send(self, method: str, path: str, payload: bytes, extra: str = "") -> Reply:
        lines = [f"{method} {path} HTTP/1.1{extra}", f"Host: {self.ip}:{self.port}", "Accept: application/json",
                 f"Content-Length: {len(payload)}"]
        if payload:
            lines.append("Content-Type: application/json")
        if self._digest is not None:
            lines.append(f"Authorization: {self._digest.header(method, path)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
        for attempt in (1, 2):
            reused = self._conn is not None
            reader, writer = await self._connection()
            try:
                writer.write(request)
                reply, keep = await _read_reply(reader, method)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if reused and attempt == 1:  # the server closed the kept connection meanwhile: once more
                    continue
                raise
            if not keep:
                await self.close()
            return reply
        raise AssertionError("unreachable")

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is None:
            self._conn = await asyncio.open_connection(self.ip, self.port, limit=MAX_HEADER)
            self.connections += 1
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            _, writer = self._conn
            self._conn = None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
