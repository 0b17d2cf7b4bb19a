"""`kuat demo --sites N` (N >= 2): the national topology on one machine.

One national HSC registry (`kuat registry serve`, SQLite in the work dir), N site controllers each with its own
database, simulator, gateway agents and grid day, all on one broker. The authority (this process, on the
registry's database) creates a licensed operator and a DPC per site in different trading zones, a subtype-II tenant
hosted at the first site and the accredited pool, applies for every machine of every site and includes them, except
a few it leaves pending; one machine mines on a pool that is not accredited (the site file's); one tenant machine
moves from the first site to the second during the run. Every machine the registry does not show as included,
licensed and on an accredited pool stays dark (quota/rights.py).

`endpoints.json` in the work dir names every URL and key.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click
import yaml

from demo.cli import (
    READY_TIMEOUT_S,
    ROLES,
    Demo,
    DemoOptions,
    _http_ok,
    demo_child,
    empty_work_dir,
    gateways_online,
    start_broker,
    stop_all,
    stop_on_signals,
    sum_nominal_w,
    write_agent_config,
)
from demo.grid import GridDay
from demo.procs import STOP, Child, ChildDied, free_port, kuat_argv, wait_until

log = logging.getLogger("demo")

ZONES = ("North", "West", "South")
AUTHORITY = "authority:demo"
MOVE_AFTER_MIN = 10.0  # simulated minutes after start when the tenant's machine moves to the second site


@dataclass
class NationalSite:
    demo: Demo  # the site's own ports, keys and grid day (demo.cli.Demo)
    dpc: str
    zone: str
    operator_bin: str
    site_file: Any
    db: Path
    dpc_key_file: Path
    included: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


@dataclass
class National:
    opts: DemoOptions
    root: Demo  # the shared broker lives in root.children
    registry_port: int
    keys: dict[str, str]  # authority, regulator
    sites: list[NationalSite] = field(default_factory=list)
    moving: str | None = None
    move_at: float = 0.0
    moved: bool = False

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    @property
    def registry_db(self) -> str:
        return f"sqlite:///{self.opts.work_dir / 'national.sqlite'}"


def valid_bin(seed: int) -> str:
    """A 12-digit BIN with a valid check digit (registry.bin), distinct per seed."""
    from registry.bin import check_digit

    for n in range(seed, seed + 1000):
        first = f"9905014{n:04d}"
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)
    raise AssertionError("no valid BIN found")


def run(opts: DemoOptions, n_sites: int) -> None:
    from kuat import clock

    empty_work_dir(opts.work_dir)
    clock.configure(time.time(), opts.speed)
    api_ports = [opts.port or free_port()] + [free_port() for _ in range(n_sites - 1)]
    root = Demo(opts, api_ports[0], free_port(), free_port(), {})
    nat = National(opts, root, free_port(), {})
    stop_on_signals(root)
    failure: Exception | None = None
    try:
        start(nat, n_sites, api_ports)
        grids = [GridDay(s.demo) for s in nat.sites]
        for grid in grids:
            grid.start()
        nat.move_at = time.monotonic() + MOVE_AFTER_MIN * 60 / opts.speed
        path = write_endpoints(nat)
        banner(nat, path)
        supervise(nat, grids)
    except ChildDied as exc:
        failure = exc
    except Exception as exc:  # any failure: stop every part, then say it
        failure = exc
        log.exception("demo failed")
    finally:
        stop_all(root)
    if failure is not None:
        raise click.ClickException(f"{failure} (logs: {opts.work_dir / 'logs'})")
    log.info("demo stopped")


def start(nat: National, n_sites: int, api_ports: list[int]) -> None:
    opts, root = nat.opts, nat.root
    logs = opts.work_dir / "logs"
    start_broker(root, logs)
    nets = random.sample(range(20, 240, 2), n_sites)
    for i in range(n_sites):
        nat.sites.append(make_site(nat, i, nets[i], api_ports[i]))
    seed_registry(nat)
    argv = kuat_argv("registry", "serve", "--database-url", nat.registry_db, "--port", str(nat.registry_port))
    env = {"KUAT_REGISTRY_SIGNING_KEY_FILE": str(opts.work_dir / "registry-signing.pem")}
    registry = Child("registry", argv, logs, env=env).start()  # its signing key in the work dir, not the cwd
    root.children.append(registry)
    wait_until(lambda: _http_ok(f"{nat.registry_url}/healthz"), "national registry", READY_TIMEOUT_S, [registry])
    port_offset = 0 if os.geteuid() == 0 else 10000
    for site in nat.sites:
        start_site(nat, site, logs, port_offset)


def make_site(nat: National, i: int, net: int, api_port: int) -> NationalSite:
    from sim.site import load_site

    name = f"site{i + 1}"
    text = nat.opts.site_file.read_text()
    source = nat.opts.work_dir / f"{name}.toml"
    head, sep, rest = text.partition("[site]")
    renamed = rest.replace('name = "', f'name = "{name}" # was "', 1) if sep else rest
    source.write_text(head + sep + renamed)
    site_file = load_site(source, miner_net=f"127.{net}", pdu_net=f"127.{net + 1}")
    keys = {role: f"demo-{name}-{role}-{secrets.token_urlsafe(10)}" for role in ROLES}
    own = nat.opts.work_dir / name  # the site's agent configs and buffers
    own.mkdir()
    demo = Demo(replace(nat.opts, site_file=source, work_dir=own), api_port, nat.root.broker_port, free_port(), keys,
                site_name=site_file.site.name)  # fmt: skip
    demo.children = nat.root.children  # one list: stopped together
    return NationalSite(demo, f"DPC-{i + 1}", ZONES[i % len(ZONES)], valid_bin(10 * i + 1), site_file,
                        nat.opts.work_dir / f"{name}.sqlite", nat.opts.work_dir / f"{name}-dpc.key")


def seed_registry(nat: National) -> None:
    """The authority's part, on the registry's database before it serves: licences, DPCs, the pool, the tenant,
    applications for every machine of every site, inclusion of all but a few (left pending)."""
    from demo.seed import ACCREDITED_POOL, TENANT_BIN, TENANT_OWNER
    from registry.contract.v1 import ApplicationBatch, ApplicationIn
    from registry.db import init_db
    from registry.models import Role
    from registry.national.service import NationalRegistry
    from registry.national.setup import bind_dpc_key, create_key
    from registry.schemas import DpcIn, LicenseeIn, PoolIn
    from serverkit.db import make_engine, session_factory

    logging.getLogger("registry").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = make_engine(nat.registry_db)
    init_db(engine)
    sessions = session_factory(engine)
    reg = NationalRegistry(sessions)
    start = date.today() - timedelta(days=180)
    reg.create_reference("licensee", LicenseeIn(bin=TENANT_BIN, name="Steppe Hash LLP (tenant)", subtype="II",
                                                licence_number="DM-T-1", valid_from=start), AUTHORITY)  # fmt: skip
    reg.create_reference("pool", PoolIn(name="KZ Accredited Pool", endpoints=[ACCREDITED_POOL],
                                        accreditation_number="AP-07", valid_from=start,
                                        valid_to=date.today() + timedelta(days=720)), AUTHORITY)  # fmt: skip
    nat.keys["authority"] = create_key(sessions, "authority-demo", Role.AUTHORITY)
    nat.keys["regulator"] = create_key(sessions, "regulator-demo", Role.REGULATOR)
    for i, site in enumerate(nat.sites):
        op = reg.create_reference("licensee", LicenseeIn(bin=site.operator_bin, name=f"Kuat Mining {i + 1} LLP",
                                                         licence_number=f"DM-{i + 1:04d}", subtype="I",
                                                         valid_from=start), AUTHORITY)  # fmt: skip
        capacity = max(1.0, round(sum_nominal_w(site.site_file) * 1.25 / 1e6, 1))
        reg.create_reference("dpc", DpcIn(name=f"DPC {site.demo.site_name}", code=site.dpc, address=f"Site {i + 1}",
                                          zone=site.zone, operator_id=op.id, capacity_mw=capacity,
                                          residential_zone_evidence="akimat letter"), AUTHORITY)
        site.dpc_key_file.write_text(bind_dpc_key(sessions, f"controller-{site.dpc}", [site.dpc]) + "\n")
        tenant_here = i == 0
        apps = [ApplicationIn(kind="inclusion", serial=str(m.serial), owner_bin=TENANT_BIN
                              if tenant_here and m.owner == TENANT_OWNER else site.operator_bin, mac=m.mac,
                              model=m.model, submitted_by="operator:demo", submitted_at=reg.now())
                for m in site.site_file.miners]  # fmt: skip
        receipt = reg.submit_applications(site.dpc, ApplicationBatch(applications=apps), f"seed-{site.dpc}",
                                          AUTHORITY)  # fmt: skip
        step = max(1, len(receipt.items) // max(1, nat.opts.unregistered))
        left = {a.serial for a in receipt.items[step - 1::step][:nat.opts.unregistered]}
        for a in receipt.items:
            if a.serial in left:
                site.pending.append(a.serial)
                continue
            reg.decide(a.id, True, None, AUTHORITY)
            site.included.append(a.serial)
        log.info("registry: %s (%s, zone %s): %d machines included, %d left pending", site.dpc, site.demo.site_name,
                 site.zone, len(site.included), len(site.pending))
    first = nat.sites[0]
    tenant = [str(m.serial) for m in first.site_file.miners if m.owner == TENANT_OWNER and
              str(m.serial) in first.included]  # fmt: skip
    nat.moving = tenant[0] if tenant else None
    engine.dispose()


def start_site(nat: National, site: NationalSite, logs: Path, port_offset: int) -> None:
    demo, file = site.demo, site.site_file
    name = demo.site_name
    sim_args = ["sim", "run", "--site", str(demo.opts.site_file), "--port-offset", str(port_offset), "--control-port",
                str(demo.control_port), "--miner-net", file.site.miner_net, "--pdu-net", file.site.pdu_net]
    sim = demo_child(nat.root, f"sim-{name}", kuat_argv(*sim_args), logs)
    wait_until(lambda: _http_ok(f"http://127.0.0.1:{demo.control_port}/state"), f"simulator {name}",
               READY_TIMEOUT_S, [sim])  # fmt: skip
    config = nat.opts.work_dir / f"controller-{name}.yaml"
    config.write_text(yaml.safe_dump({
        "database_url": f"sqlite:///{site.db}",
        "broker": {"host": "127.0.0.1", "port": demo.broker_port, "client_id": f"kuat-demo-{name}"},
        "sites": [name],
        "api": {"host": "127.0.0.1", "port": demo.api_port},
        "api_keys": [{"name": f"demo-{role}", "role": role, "key": key,
                      **({"scope": {"sites": [name]}} if role == "grid" else {})}
                     for role, key in demo.keys.items()],
        "gateway_timeout_s": 30.0, "sightings_flush_s": 2.0, "rollup_flush_s": 20.0,
        "registry": {"mode": "remote", "dpc": site.dpc, "url": nat.registry_url, "key_file": str(site.dpc_key_file),
                     "sync_s": 2.0},
    }, sort_keys=False))  # fmt: skip
    ctl = demo_child(nat.root, f"controller-{name}", kuat_argv("controller", "run", "--config", str(config)), logs)
    wait_until(lambda: _http_ok(f"{demo.base_url}/healthz"), f"controller {name}", READY_TIMEOUT_S, [ctl])
    for gateway in file.site.gateways:
        cfg = write_agent_config(demo, file, gateway, port_offset)
        demo_child(nat.root, f"agent-{name}-{gateway}", kuat_argv("agent", "run", "--config", str(cfg)), logs)
    wait_until(lambda: gateways_online(demo) >= len(file.site.gateways), f"{name}: gateway agents online",
               READY_TIMEOUT_S, nat.root.children)  # fmt: skip


def move_machine(nat: National) -> None:
    """The tenant's machine leaves the first site for the second: an application at the new DPC, included there;
    the first site's controller follows its feed (`moved`) and darkens it."""
    from controller.registry_link.transport import HttpDpcPort, read_key
    from demo.seed import TENANT_BIN
    from registry.contract.v1 import ApplicationBatch, ApplicationIn
    from registry.national.service import NationalRegistry
    from serverkit.db import make_engine, session_factory

    nat.moved = True
    if nat.moving is None or len(nat.sites) < 2:
        return
    to = nat.sites[1]
    port = HttpDpcPort(nat.registry_url, read_key(to.dpc_key_file))
    try:
        batch = ApplicationBatch(applications=[ApplicationIn(kind="move", serial=nat.moving, owner_bin=TENANT_BIN,
                                                             submitted_by="operator:demo",
                                                             submitted_at=time_now())])  # fmt: skip
        receipt = port.submit_applications(to.dpc, batch, f"demo-move-{nat.moving}")
    finally:
        port.close()
    engine = make_engine(nat.registry_db)
    try:
        NationalRegistry(session_factory(engine)).decide(receipt.items[0].id, True, None, AUTHORITY)
    finally:
        engine.dispose()
    log.info("registry: %s moved from %s to %s", nat.moving, nat.sites[0].dpc, to.dpc)


def time_now() -> Any:
    from kuat import clock

    return clock.now()


def write_endpoints(nat: National) -> Path:
    data = {
        "broker": {"host": "127.0.0.1", "port": nat.root.broker_port},
        "registry": {"url": nat.registry_url, "docs": f"{nat.registry_url}/docs", "database": nat.registry_db,
                     "keys": nat.keys},
        "sites": [{
            "site": s.demo.site_name, "dpc": s.dpc, "zone": s.zone, "operator_bin": s.operator_bin,
            "api": s.demo.base_url, "dashboard": s.demo.dashboard_url, "docs": f"{s.demo.base_url}/docs",
            "database": f"sqlite:///{s.db}", "keys": s.demo.keys, "dpc_key_file": str(s.dpc_key_file),
            "simulator_control": f"http://127.0.0.1:{s.demo.control_port}",
            "included": len(s.included), "pending": s.pending,
        } for s in nat.sites],
        "moving": {"serial": nat.moving, "from": nat.sites[0].dpc, "to": nat.sites[1].dpc} if nat.moving else None,
    }
    path = nat.opts.work_dir / "endpoints.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def banner(nat: National, endpoints: Path) -> None:
    line = "=" * 78
    click.echo(f"\n{line}\n Kuat national demo: one registry, {len(nat.sites)} sites, speed x{nat.opts.speed:g}\n")
    click.echo(f" Registry:   {nat.registry_url}/docs  (authority key {nat.keys['authority']})")
    for s in nat.sites:
        click.echo(f" {s.demo.site_name} ({s.dpc}, zone {s.zone}): {s.demo.dashboard_url}")
    click.echo(f"\n Every URL and key: {endpoints}\n Logs:       {nat.opts.work_dir / 'logs'}\n"
               f" Ctrl-C stops everything.\n{line}\n")  # fmt: skip


def supervise(nat: National, grids: list[GridDay]) -> None:
    ends = time.monotonic() + nat.opts.duration if nat.opts.duration else None
    while not nat.root.stopping and not STOP.is_set() and (ends is None or time.monotonic() < ends):
        for child in nat.root.children:
            if not child.alive():
                raise ChildDied(child)
        for grid in grids:
            grid.tick()
        if not nat.moved and time.monotonic() >= nat.move_at:
            move_machine(nat)
        time.sleep(0.5)

