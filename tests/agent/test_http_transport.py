"""agent/transport/http.py against real sockets on 127.0.0.1: a tiny scripted HTTP server per test (keep-alive or
not, digest challenges checked by the simulator's own RFC 7616 code), so every path of the client (kept connection,
cached challenge, stale nonce, chunked and read-to-close bodies, broken replies, hang-ups, timeouts) meets a real
peer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from agent.errors import DeviceError, DeviceUnreachable
from agent.transport.http import Digest, WebClient, get_json, parse_challenge
from sim.miners.http import HttpRequest, digest_ok, read_request

REALM = "antMiner Configuration"
Handler = Callable[[HttpRequest, int], bytes]  # request, its number on the server -> raw reply bytes


def reply(status: int, body: bytes = b'{"stats":"success"}', *, extra: str = "", close: bool = False) -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode() + body


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []
        self.connections = 0
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    req = await read_request(reader, 5.0)
                except Exception:
                    return
                self.requests.append(req)
                raw = self.handler(req, len(self.requests))
                if not raw:
                    return  # hang up without a reply
                writer.write(raw)
                await writer.drain()
                if b"Connection: close" in raw.split(b"\r\n\r\n", 1)[0] or raw.startswith(b"HTTP/1.0"):
                    return
        finally:
            writer.close()


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Server]:
    server = Server(handler)
    srv = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = srv.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        srv.close()
        await srv.wait_closed()


def digest_guarded(nonce: str = "n1", password: str = "root", stale_after: int | None = None) -> Handler:
    """A lighttpd-like server: 401 with a digest challenge until the request carries a valid answer."""

    def handle(req: HttpRequest, n: int) -> bytes:
        current = "n2" if stale_after is not None and n > stale_after else nonce
        challenge = f'WWW-Authenticate: Digest realm="{REALM}", nonce="{current}", qop="auth", algorithm=MD5'
        given = parse_challenge(req.headers.get("authorization", ""))
        if given.get("nonce") != current or not digest_ok(req, REALM, "root", password):
            stale = ", stale=true" if given and given.get("nonce") != current else ""
            return reply(401, b"", extra=challenge + stale + "\r\n")
        return reply(200, json.dumps({"stats": "success", "n": n, "body": req.json()}).encode())

    return handle


async def test_a_kept_connection_and_a_cached_challenge_make_each_later_request_one_round_trip() -> None:
    async with serving(digest_guarded()) as server:
        client = WebClient("127.0.0.1", port=server.port)
        for mode in (1, 0, 1):
            assert (await client.request_json("POST", "/cgi-bin/set_miner_conf.cgi", {"miner-mode": mode}))[
                "body"] == {"miner-mode": mode}
        await client.close()
    statuses = [r.headers.get("authorization", "")[:6] for r in server.requests]
    assert statuses == ["", "Digest", "Digest", "Digest"]  # one challenge, then three answered requests
    assert server.connections == 1 and client.connections == 1
    counts = [parse_challenge(r.headers["authorization"])["nc"] for r in server.requests[1:]]
    assert counts == ["00000001", "00000002", "00000003"]  # the nonce count grows under one challenge


async def test_a_stale_nonce_is_answered_once_with_the_new_challenge() -> None:
    async with serving(digest_guarded(stale_after=2)) as server:
        client = WebClient("127.0.0.1", port=server.port)
        await client.request_json("GET", "/cgi-bin/summary.cgi")  # 401 n1, then 200
        result = await client.request_json("GET", "/cgi-bin/summary.cgi")  # n1 is stale now: 401 n2, then 200
        await client.close()
    assert result["stats"] == "success" and len(server.requests) == 4


async def test_wrong_credentials_are_a_device_error_that_says_so_after_one_retry() -> None:
    async with serving(digest_guarded(password="other")) as server:
        with pytest.raises(DeviceError, match="credentials refused"):
            await get_json("127.0.0.1", "/cgi-bin/summary.cgi", port=server.port)
    assert len(server.requests) == 2  # asked, answered the challenge once, refused again: no loop


async def test_a_server_that_closes_every_connection_is_reconnected_per_request() -> None:
    async with serving(lambda req, n: reply(200, close=True)) as server:
        client = WebClient("127.0.0.1", port=server.port)
        for _ in range(3):
            assert (await client.request_json("GET", "/x"))["stats"] == "success"
        await client.close()
    assert server.connections == 3


async def test_a_kept_connection_the_server_dropped_is_retried_once_on_a_new_one() -> None:
    async with serving(lambda req, n: reply(200) if n != 2 else b"") as server:
        client = WebClient("127.0.0.1", port=server.port)
        await client.request_json("GET", "/x")
        assert (await client.request_json("GET", "/x"))["stats"] == "success"  # request 2 hung up: request 3
        await client.close()
    assert server.connections == 2 and len(server.requests) == 3


def chunked(req: HttpRequest, n: int) -> bytes:
    return b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3;x=y\r\n 1}\r\n0\r\n\r\n'


def to_close(req: HttpRequest, n: int) -> bytes:
    return b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"a": 2}'


@pytest.mark.parametrize(("handler", "expected"), [(chunked, {"a": 1}), (to_close, {"a": 2})])
async def test_chunked_and_read_to_close_bodies(handler: Handler, expected: dict[str, int]) -> None:
    async with serving(handler) as server:
        assert await get_json("127.0.0.1", "/x", port=server.port) == expected


@pytest.mark.parametrize(("raw", "match"), [
    (b"SSH-2.0-dropbear\r\n\r\n", "not an HTTP reply"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
    (reply(200, b"[1, 2]"), "not a JSON object"),
    (reply(500, b"oops"), "HTTP 500"),
])
async def test_broken_replies_are_device_errors_naming_what_was_wrong(raw: bytes, match: str) -> None:
    async with serving(lambda req, n: raw) as server:
        with pytest.raises(DeviceError, match=match):
            await get_json("127.0.0.1", "/x", port=server.port)


async def test_a_refused_port_and_a_silent_server_are_unreachable() -> None:
    async with serving(lambda req, n: reply(200)) as server:
        port = server.port
    with pytest.raises(DeviceUnreachable):
        await get_json("127.0.0.1", "/x", port=port)  # nothing listens there any more

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    srv = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        with pytest.raises(DeviceUnreachable, match="TimeoutError"):
            await get_json("127.0.0.1", "/x", port=srv.sockets[0].getsockname()[1], timeout_s=0.3)
    finally:
        srv.close()


def test_challenges_parse_with_commas_in_quotes_and_unknown_algorithms_are_refused() -> None:
    parsed = parse_challenge('Digest realm="a, b", nonce=abc, qop="auth,auth-int", opaque="o"')
    assert parsed == {"realm": "a, b", "nonce": "abc", "qop": "auth,auth-int", "opaque": "o"}
    assert parse_challenge('Basic realm="x"') == {}
    assert Digest("root", "root", parsed).qop == "auth"
    with pytest.raises(DeviceError, match="SHA-512"):
        Digest("root", "root", {"algorithm": "SHA-512"})
