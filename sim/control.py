"""The simulator's run-time control API: a tiny JSON HTTP server on 127.0.0.1 (stdlib asyncio, no framework).

    GET  /state   site totals (power W, hash rate TH/s, energy Wh) and every miner's phase, power and faults
    POST /fault   {"target": ip | serial | pdu-id, "fault": name, "on": true|false}

Faults are those of `sim.physics.Fault` for miners; a PDU knows only "offline".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from sim.miners.http import BadRequest, HttpRequest, HttpResponse, json_response, read_request
from sim.miners.net import MinerServers
from sim.physics import Fault
from sim.runtime import Site

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
FAULT_NAMES = sorted(f.value for f in Fault)


def state(site: Site, miners: MinerServers | None = None) -> dict[str, Any]:
    return {
        "site": site.name,
        "time": site.clock.now(),
        "power_w": round(site.power_w(), 1),
        "hashrate_ths": round(site.hashrate_ths(), 3),
        "energy_wh": round(site.energy_wh(), 3),
        "replies": dict(miners.stats.replies) if miners else {},
        "miners": [
            {"ip": m.ip, "serial": m.serial, "model": m.d.model, "firmware": m.d.firmware,
             "phase": str(m.phys.phase()), "power_w": round(m.phys.power_w(), 1),
             "hashrate_ths": round(m.phys.hashrate_ths(), 3), "faults": sorted(f.value for f in m.phys.faults)}
            for m in site.miners
        ],
        "pdus": [{"id": p.d.id, "ip": p.ip, "family": p.d.family, "offline": p.offline,
                  "power_w": round(p.power_w(), 1)} for p in site.pdus],
    }


class FaultRequestError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_fault(body: Any) -> tuple[str, str, bool]:
    if not isinstance(body, dict):
        raise FaultRequestError(400, 'body must be a JSON object {"target": ..., "fault": ..., "on": true}')
    target, fault, on = body.get("target"), body.get("fault"), body.get("on", True)
    if not isinstance(target, str) or not target:
        raise FaultRequestError(400, "'target' must be a miner ip or serial, or a PDU id or ip")
    if fault not in FAULT_NAMES:
        raise FaultRequestError(400, f"unknown fault {fault!r}; known: {', '.join(FAULT_NAMES)}")
    if not isinstance(on, bool):
        raise FaultRequestError(400, "'on' must be true or false")
    return target, fault, on


def apply_fault(site: Site, body: Any) -> dict[str, Any]:
    target, fault, on = parse_fault(body)
    try:
        site.inject(target, fault, on)
    except KeyError as exc:
        raise FaultRequestError(404, f"no miner or PDU {target!r}") from exc
    except ValueError as exc:
        raise FaultRequestError(400, str(exc)) from exc
    log.info("control: fault %s %s on %s", fault, "set" if on else "cleared", target)
    return {"target": target, "fault": fault, "on": on}


class ControlApi:
    def __init__(self, site: Site, port: int, miners: MinerServers | None = None) -> None:
        self.site = site
        self.port = port
        self.miners = miners
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> ControlApi:
        try:
            self.server = await asyncio.start_server(self._handle, HOST, self.port, reuse_address=True)
        except OSError as exc:
            raise OSError(exc.errno, f"control API cannot listen on {HOST}:{self.port}: {exc.strerror}") from exc
        if self.port == 0:
            self.port = self.server.sockets[0].getsockname()[1]
        log.info("control API on %s", self.url)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)
            self.server = None

    def route(self, req: HttpRequest) -> HttpResponse:
        if req.path == "/state":
            if req.method != "GET":
                return json_response({"error": "use GET /state"}, 405)
            return json_response(state(self.site, self.miners))
        if req.path == "/fault":
            if req.method != "POST":
                return json_response({"error": "use POST /fault"}, 405)
            try:
                return json_response(apply_fault(self.site, req.json()))
            except json.JSONDecodeError as exc:
                return json_response({"error": f"body is not JSON: {exc}"}, 400)
            except FaultRequestError as exc:
                return json_response({"error": str(exc)}, exc.status)
        return json_response({"error": f"no such endpoint {req.path}; try GET /state or POST /fault"}, 404)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                req = await read_request(reader)
            except BadRequest as exc:
                writer.write(json_response({"error": str(exc)}, 400).encode())
            else:
                writer.write(self.route(req).encode())
            await writer.drain()
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            writer.close()
