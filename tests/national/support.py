"""The national topology for integration tests: `kuat registry serve` as its own process on PostgreSQL, simulated
sites on their own loopback blocks, and site controllers (in process, each with its own database) linked to the
registry over HTTP with the real agent polling their site through mosquitto."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from agent.config import config_from_dict
from controller.quota.wiring import start_quota
from controller.registry_link.client import RegistryLink
from controller.runtime import Services, build_services
from controller.scheduler import make_scheduler
from kuat import clock
from quota.timebase import local_day_and_hour
from registry.db import init_db
from registry.models import Role
from registry.national.service import NationalRegistry
from registry.national.setup import bind_dpc_key, create_key
from serverkit.db import make_engine, session_factory
from sim.agent_config import agent_config_dict
from sim.server import SimConfig, SimServer
from sim.site import SiteFile, load_site
from tests.agent.mqtt_support import running_agent
from tests.controller.conftest import make_settings
from tests.quota_e2e.support import QUOTA
from tests.support.servers import Mosquitto, free_port, wait_port

PROJECT = Path(__file__).resolve().parents[2]
SMALL = PROJECT / "sim" / "sites" / "small.toml"
PORT_OFFSET = 31000
OPERATOR = "op-" + "n" * 30


async def until(check: Callable[[], bool], what: str, within_s: float = 40.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if check():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within_s} s waiting for {what}")


class RegistryProcess:
    """`kuat registry serve` on PostgreSQL, stoppable and restartable on the same port (an outage)."""

    def __init__(self, database_url: str, log: Path) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RegistryProcess:
        env = {**os.environ, "PYTHONPATH": str(PROJECT), "KUAT_REGISTRY_DATABASE_URL": self.database_url}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "kuat.cli", "registry", "serve", "--database-url",
                                          self.database_url, "--port", str(self.port), "--signing-key",
                                          str(self.log.parent / "registry-signing.pem")], cwd=PROJECT, env=env,
                                         stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_port("127.0.0.1", self.port, 30)
        except Exception:
            self.stop()
            raise AssertionError(f"registry did not start: {self.log.read_text()[-2000:]}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


@dataclass
class National:
    engine: Engine
    registry: NationalRegistry
    process: RegistryProcess
    regulator_key: str

    def dpc_key(self, tmp_path: Path, dpc: str) -> Path:
        path = tmp_path / f"{dpc}.key"
        path.write_text(bind_dpc_key(session_factory(self.engine), f"ctl-{dpc}", [dpc]) + "\n")
        return path


def national(database_url: str, tmp_path: Path) -> National:
    engine = make_engine(database_url)
    init_db(engine)
    nat = NationalRegistry(session_factory(engine))
    regulator = create_key(session_factory(engine), "inspector", Role.REGULATOR)
    process = RegistryProcess(database_url, tmp_path / "registry.log").start()
    return National(engine, nat, process, regulator)


def site_file(tmp_path: Path, name: str) -> SiteFile:
    """small.toml under another site name (serials and MACs are derived from it: every site its own machines)."""
    path = tmp_path / f"{name}.toml"
    path.write_text(SMALL.read_text().replace('name = "small"', f'name = "{name}"'))
    net = random.randint(20, 240)
    return load_site(path, miner_net=f"127.{net}", pdu_net=f"127.{net + 1}")


@asynccontextmanager
async def simulated(tmp_path: Path, name: str) -> AsyncIterator[tuple[SimServer, SiteFile]]:
    last: OSError | None = None
    for _ in range(8):
        site = site_file(tmp_path, name)
        server = SimServer(site, SimConfig(port_offset=PORT_OFFSET, speed=1.0, control_port=None, boot_s=0.5,
                                           wake_s=0.5, ramp_s=0.5, sleep_s=0.2))  # fmt: skip
        try:
            await server.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            last = exc
            continue
        try:
            yield server, site
        finally:
            await server.stop()
        return
    raise RuntimeError(f"no free loopback block: {last}")


def no_web(site: SiteFile) -> set[str]:
    """The MAC of the last tenant stock Antminer of the site: the agent reaches it without web access."""
    tenant = [str(m.mac) for m in site.miners if m.firmware == "bmminer" and m.owner == "tenant-ii"]
    return set(tenant[-1:])


@dataclass
class Site:
    name: str
    dpc: str
    svc: Services
    link: RegistryLink
    sim: SimServer
    file: SiteFile

    def hashing(self, serial: str | None = None, pred: Callable[[Any], bool] = lambda m: True) -> set[str]:
        """Serials (or MACs) of the simulated machines hashing now, by the simulator's own physics."""
        site = self.sim.site
        site.tick()
        return {str(m.d.serial) for m in site.miners if pred(m) and m.phys.hashrate_ths() > 0}

    def serials(self, firmware: str, owner: str = "host") -> list[str]:
        return [str(m.serial) for m in self.file.miners if m.firmware == firmware and m.owner == owner]

    def without_web(self) -> list[str]:
        """Serials of the stock Antminers the agent reaches without their web interface (they tell no serial)."""
        return [str(m.serial) for m in self.file.miners if str(m.mac) in no_web(self.file)]


@asynccontextmanager
async def site_controller(nat: National, broker: Mosquitto, tmp_path: Path, database_url: str, name: str,
                          dpc: str, registry_url: str | None = None) -> AsyncIterator[Site]:
    """A simulated site, its controller (own database, quota loop, scheduler, registry link over HTTP) and the
    agent; the budget is ample, so only the right to power decides who hashes."""
    work = tmp_path / name
    work.mkdir()
    key = nat.dpc_key(work, dpc)
    async with simulated(work, name) as (server, site):
        settings = make_settings(work, database_url=database_url, sites=[name], api_keys=[
            {"name": "ops", "role": "operator", "key": OPERATOR}], broker={"port": broker.port,
                                                                            "client_id": f"ctl-{name}"},
            quota=QUOTA, sightings_flush_s=0.5, sightings_heartbeat_s=2.0, registry={
                "mode": "remote", "dpc": dpc, "url": registry_url or nat.process.url, "key_file": str(key),
                "sync_s": 0.5, "retry_min_s": 0.5, "retry_max_s": 2.0, "timeout_s": 3.0, "trust_window_h": 1.0})
        svc = build_services(settings)
        assert svc.ingest is not None and svc.quota is not None and svc.registry_link is not None
        svc.quota.set_site_limits(name, connection_kw=1000, actor="test")
        svc.quota.push_schedule(name, local_day_and_hour(clock.now())[0], [1000.0] * 24, "test")
        svc.ingest.start()
        assert svc.ingest.wait_connected(10)
        start_quota(svc)
        scheduler = make_scheduler(svc)
        scheduler.start()
        data = agent_config_dict(site, None, broker_port=broker.port, buffer_path=work / "buf.sqlite",
                                 port_offset=PORT_OFFSET, interval_s=0.5)  # fmt: skip
        data.update(site=name, gateway="gw1", failsafe={"grace_s": 0.5, "retry_s": 1.0})
        data["poll"]["device_timeout_s"] = 5.0
        closed = free_port()
        for entry in data["devices"]["miners"]:
            if entry["id"] in no_web(site):  # no web access: stock firmware tells its serial only there
                entry["web_port"] = closed
        try:
            async with running_agent(config_from_dict(data)):
                yield Site(name, dpc, svc, svc.registry_link, server, site)
        finally:
            scheduler.shutdown(wait=False)
            svc.close()
            svc.engine.dispose()
