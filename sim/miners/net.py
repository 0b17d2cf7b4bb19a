"""The simulated miners on the network: one asyncio listener per miner and port, on the miner's own 127.x address.

RPC on 4028 (+offset) for every firmware; the stock Antminer web API on 80 (+offset). Network faults are played
here, before a protocol sees the request: an unreachable miner (outlet off, still booting, `offline`) resets the
connection at once; `timeout` accepts and never answers; `slow` answers after `slow_s` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sim.miners import antminer_web, braiins
from sim.miners.avalon import AvalonApi
from sim.miners.bmminer import BmminerApi
from sim.miners.btminer import BtminerApi
from sim.miners.btminer_v3 import BtminerV3Api
from sim.miners.cgminer import CgminerApi, request_complete
from sim.miners.http import BadRequest, read_request, text_response
from sim.miners.luxos import LuxosApi
from sim.physics import Fault
from sim.runtime import SimMiner, Site

log = logging.getLogger(__name__)

RPC_PORT = 4028
WEB_PORT = 80
MAX_REQUEST = 64 * 1024
READ_TIMEOUT_S = 5.0
HOLD_MAX_S = 300.0  # a `timeout` miner keeps a silent connection open at most this long

APIS: dict[str, CgminerApi] = {"bmminer": BmminerApi(), "luxos": LuxosApi(), "btminer": BtminerApi(),
                               "avalon": AvalonApi(), "braiins": braiins.BraiinsApi()}
WEB_FIRMWARE = {"bmminer", "braiins"}
V3_API = BtminerV3Api()
V3_FIRMWARE = {"btminer3"}  # Whatsminer API v3 (port 4433, length-prefixed frames); no cgminer RPC on 4028
V3_PORT = 4433


@dataclass
class ServeOptions:
    port_offset: int = 0
    slow_s: float = 5.0  # reply delay of a miner with the `slow` fault
    rpc_port: int = RPC_PORT
    web_port: int = WEB_PORT
    v3_port: int = V3_PORT

    @property
    def v3(self) -> int:
        return self.v3_port + self.port_offset

    @property
    def rpc(self) -> int:
        return self.rpc_port + self.port_offset

    @property
    def web(self) -> int:
        return self.web_port + self.port_offset


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0): what a client sees from a host whose service is down."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def hold(reader: asyncio.StreamReader) -> None:
    """Keep the connection open and say nothing until the client gives up (bounded)."""
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
        await asyncio.wait_for(reader.read(), HOLD_MAX_S)


async def read_rpc_request(reader: asyncio.StreamReader) -> bytes:
    """Read until the request is complete (no delimiter on the wire), EOF, the size cap or the read timeout."""
    buf = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READ_TIMEOUT_S
    while len(buf) < MAX_REQUEST:
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(4096), left)
        except TimeoutError:
            break
        if not chunk:
            break
        buf += chunk
        if request_complete(buf):
            break
    return buf


async def network_faults(miner: SimMiner, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         opts: ServeOptions) -> bool:
    """Play the miner's network condition; True when the request must not be answered."""
    if not miner.phys.reachable:
        log.debug("%s: unreachable (%s), connection reset", miner.ip, miner.phys.phase())
        reset(writer)
        return True
    if Fault.TIMEOUT in miner.phys.faults:
        log.debug("%s: fault timeout, holding the connection without a reply", miner.ip)
        await hold(reader)
        return True
    if Fault.SLOW in miner.phys.faults:
        log.debug("%s: fault slow, replying in %.1f s", miner.ip, opts.slow_s)
        await asyncio.sleep(opts.slow_s)
    return False


@dataclass
class Stats:
    """Replies sent, per port kind (for the bench and the control API)."""
    replies: Counter[str] = field(default_factory=Counter)


class MinerServers:
    """Every miner of a site listening on its own address; `stop()` closes them all."""

    def __init__(self, site: Site, opts: ServeOptions | None = None) -> None:
        self.site = site
        self.opts = opts or ServeOptions()
        self.servers: list[asyncio.Server] = []
        self.stats = Stats()

    async def start(self) -> MinerServers:
        """Bind every listener; on any failure close what was opened and raise with the address that failed."""
        try:
            for miner in self.site.miners:
                if miner.d.firmware in V3_FIRMWARE:
                    await self._listen(miner, self.opts.v3, self._v3_handler(miner))
                    continue
                await self._listen(miner, self.opts.rpc, self._rpc_handler(miner))
                if miner.d.firmware in WEB_FIRMWARE:
                    await self._listen(miner, self.opts.web, self._web_handler(miner))
        except OSError:
            await self.stop()
            raise
        log.info("miners listening: %d sockets for %d miners (RPC port %d, web port %d)",
                 len(self.servers), len(self.site.miners), self.opts.rpc, self.opts.web)
        return self

    async def _listen(self, miner: SimMiner, port: int,
                      handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> None:
        try:
            server = await asyncio.start_server(handler, host=miner.ip, port=port, reuse_address=True, backlog=64)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {miner.ip}:{port} ({miner.serial}): {exc.strerror}") from exc
        self.servers.append(server)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self.servers.clear()

    # ------------------------------------------------------------ connection handlers
    def _rpc_handler(self, miner: SimMiner) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                           Awaitable[None]]:
        api = APIS[miner.d.firmware]

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if await network_faults(miner, reader, writer, self.opts):
                    return
                raw = await read_rpc_request(reader)
                writer.write(api.answer(miner, raw))
                await writer.drain()
                self.stats.replies["rpc"] += 1
            except (ConnectionError, OSError):
                pass
            except Exception:  # a protocol bug must not kill the listener; log it with the request's miner
                log.exception("%s: RPC handler failed", miner.ip)
            finally:
                writer.close()

        return handle

    def _v3_handler(self, miner: SimMiner) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                          Awaitable[None]]:
        """Length-prefixed requests, answered in order on the same connection until the client closes it."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if await network_faults(miner, reader, writer, self.opts):
                    return
                while True:
                    try:
                        header = await asyncio.wait_for(reader.readexactly(4), READ_TIMEOUT_S)
                        length = struct.unpack("<I", header)[0]
                        if length > MAX_REQUEST:
                            break
                        body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT_S)
                    except (asyncio.IncompleteReadError, TimeoutError):
                        break
                    if not miner.phys.reachable:
                        reset(writer)
                        return
                    writer.write(V3_API.answer(miner, body))
                    await writer.drain()
                    self.stats.replies["v3"] += 1
            except (ConnectionError, OSError):
                pass
            except Exception:
                log.exception("%s: API v3 handler failed", miner.ip)
            finally:
                writer.close()

        return handle

    def _web_handler(self, miner: SimMiner) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                           Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if await network_faults(miner, reader, writer, self.opts):
                    return
                try:
                    req = await read_request(reader, READ_TIMEOUT_S)
                except BadRequest as exc:
                    writer.write(text_response(400, str(exc), "text/plain").encode())
                else:
                    web = braiins.handle if miner.d.firmware == "braiins" else antminer_web.handle
                    writer.write(web(miner, req).encode())
                await writer.drain()
                self.stats.replies["web"] += 1
            except (TimeoutError, ConnectionError, OSError):
                pass
            except Exception:
                log.exception("%s: web handler failed", miner.ip)
            finally:
                writer.close()

        return handle

    def summary(self) -> dict[str, dict[str, object]]:
        """Per firmware: how many miners and their address range (for the CLI table)."""
        out: dict[str, dict[str, object]] = {}
        for fw in sorted({m.d.firmware for m in self.site.miners}):
            ips = sorted((m.ip for m in self.site.miners if m.d.firmware == fw),
                         key=lambda ip: tuple(int(x) for x in ip.split(".")))
            ports = ([self.opts.v3] if fw in V3_FIRMWARE else
                     [self.opts.rpc] + ([self.opts.web] if fw in WEB_FIRMWARE else []))
            out[fw] = {"miners": len(ips), "first": ips[0], "last": ips[-1], "ports": ports}
        return out
