"""Real processes for the chaos tests: `kuat controller run` as a child process (killed with SIGKILL when a test
says so), its settings file, and the registry seeded the way the demo seeds it. Everything on loopback; every
wait bounded."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from controller.runtime import build_services
from controller.settings import load_settings
from demo.seed import seed_registry
from tests.agent.test_e2e_sim import Sim
from tests.support.servers import free_port

OPERATOR = "op-" + "c" * 30
GRID = "grid-" + "k" * 30
KEYS = [{"name": "ops", "role": "operator", "key": OPERATOR}, {"name": "kegoc", "role": "grid", "key": GRID}]
QUOTA = {"interval_s": 1.0, "lease_s": 20.0, "lag_s": 2.0, "settle_s": 2.0, "straggler_settle_s": 30.0,
         "min_on_s": 2.0, "min_off_s": 2.0, "ledger_period_s": 5, "compliance_refresh_s": 1.0}
ROOT = Path(__file__).resolve().parents[2]


class ControllerProcess:
    """One `kuat controller run` child process with its own settings file, API port and MQTT client id."""

    def __init__(self, tmp: Path, name: str, database_url: str, broker_port: int, site: str,
                 lease: dict[str, Any] | None = None, quota: dict[str, Any] | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / f"controller-{name}.yaml"
        self.config.write_text(yaml.safe_dump({
            "database_url": database_url, "sites": [site], "api": {"port": self.port}, "api_keys": KEYS,
            "broker": {"port": broker_port, "client_id": f"ctl-{site}-{name}"}, "quota": {**QUOTA, **(quota or {})},
            "lease": {"enabled": lease is not None, **(lease or {})}, "sightings_flush_s": 0.5,
            "registry": {"mode": "none_lab"},  # a lab: the faults, not power rights, are under test
        }))  # fmt: skip
        self.log = tmp / f"controller-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ControllerProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "kuat.cli", "controller", "run", "-c",
                                          str(self.config)], stdout=out, stderr=subprocess.STDOUT, env=env)
        return self

    async def healthy(self, within_s: float = 60.0) -> None:
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient(timeout=10) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.tail()
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code in (200, 503):
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"controller {self.name} not serving within {within_s} s:\n{self.tail()}")

    async def metric(self, name: str) -> float | None:
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(f"{self.url}/metrics")).text
        for line in text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[-1])
        return None

    async def call(self, method: str, path: str, key: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.request(method, f"{self.url}/api/v1/quota/{path}", json=body,
                                     headers={"X-API-Key": key})
        assert r.status_code < 300, f"{self.name}: {method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (no lease release, no final flush)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


def seed(database_url: str, sim: Sim) -> None:
    """Every machine of the simulated site registered (compliant), in the controllers' database."""
    svc = build_services(load_settings(None, database_url=database_url), with_ingest=False)
    try:
        assert svc.registry is not None
        seed_registry(svc.registry, sim.site_file, leave_unregistered=0, capacity_mw=1.0)
    finally:
        svc.close()
        svc.engine.dispose()


async def until(check: Callable[[], bool], what: str, within_s: float = 30.0, quiet: bool = False) -> float:
    """Wait (bounded) for `check`; the seconds it took. `quiet`: return instead of failing."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started >= within_s:
            if quiet:
                return -1.0
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.1)


def sim_power(sim: Sim) -> float:
    return sum(m.phys.power_w() for m in sim.server.site.miners)


class PowerLog:
    """The simulator's own site power, sampled every 0.1 s (wall clock) while `run` is on."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.samples: list[tuple[float, float]] = []

    async def run(self) -> None:
        while True:
            self.sim.server.site.tick()
            self.samples.append((time.time(), sim_power(self.sim)))
            await asyncio.sleep(0.1)

    def max_between(self, a: float, b: float) -> float:
        return max(w for t, w in self.samples if a <= t <= b)
