"""`kuat demo`: the whole system on one machine until Ctrl-C. By default the national topology (demo/national.py:
one registry, two site controllers with their own databases, simulators and agents); with `--sites 1` one site -
broker, controller (SQLite), a simulated site, two gateway agents, a seeded embedded registry and a scripted grid
day.

Every part is a subprocess with its log under the work dir; everything listens on 127.0.0.1 / 127.x only.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import shutil
import signal
import sys
import time
import webbrowser
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import click
import httpx
import yaml

from demo.grid import GridDay, GridError
from demo.procs import STOP, Child, ChildDied, Interrupted, free_port, kuat_argv, port_is_free, port_open, wait_until

log = logging.getLogger("demo")

DEFAULT_SITE = Path(__file__).resolve().parent.parent / "sim" / "sites" / "demo.toml"
READY_TIMEOUT_S = 60.0
ROLES = ("operator", "regulator", "grid", "agent")


@dataclass
class DemoOptions:
    site_file: Path
    speed: float
    port: int | None
    broker: str
    work_dir: Path
    duration: float | None
    open_browser: bool
    poll_s: float
    unregistered: int
    emergency_after_min: float | None
    emergency_minutes: float


@dataclass
class Demo:
    """The running demo: ports, keys, children, and the grid script still to play."""

    opts: DemoOptions
    api_port: int
    broker_port: int
    control_port: int
    keys: dict[str, str]
    site_name: str = ""
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def dashboard_url(self) -> str:
        return f"{self.base_url}/ui#key={self.keys['operator']}"  # a fragment: never sent to the server

    def client(self, role: str = "operator") -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"X-API-Key": self.keys[role]}, timeout=10.0)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--site", "site_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFAULT_SITE, show_default="sim/sites/demo.toml",
              help="Simulated site file (`kuat sim sites` lists the bundled ones).")
@click.option("--speed", type=click.FloatRange(min=0.1, max=3600), default=1.0, show_default=True,
              help="Simulated seconds per real second: 60 plays an hour of the grid day in a minute.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Dashboard/API port on 127.0.0.1 [default: 8080 if free, else any free port].")
@click.option("--broker", type=click.Choice(["auto", "mosquitto", "amqtt"]), default="auto", show_default=True,
              help="MQTT broker: mosquitto when installed (auto), else the embedded amqtt.")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("var/demo"),
              show_default=True, help="Database, configs and one log per process (emptied at start).")
@click.option("--duration", type=click.FloatRange(min=1), default=None,
              help="Stop by itself after this many real seconds (tests); default: run until Ctrl-C.")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in a browser, if there is one.")
@click.option("--poll-s", type=click.FloatRange(min=0.5, max=60), default=5.0, show_default=True,
              help="Agents' poll interval (real seconds).")
@click.option("--unregistered", type=click.IntRange(0, 50), default=4, show_default=True,
              help="Machines left out of the registry, to approve from the dashboard.")
@click.option("--emergency-after", "emergency_after_min", type=click.FloatRange(min=0), default=20.0,
              show_default=True, help="Simulated minutes after start when the grid's emergency cut to 30 % comes.")
@click.option("--emergency-minutes", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Simulated minutes until the grid lifts it.")
@click.option("--no-emergency", is_flag=True, help="Play the schedule only (no scripted emergency order).")
@click.option("--sites", "n_sites", type=click.IntRange(1, 8), default=2, show_default=True,
              help="2 or more: one national registry and that many site controllers, each with its own database, "
                   "simulator and agents (demo/national.py); endpoints.json in the work dir names every URL and key. "
                   "1: one site controller with the registry embedded (the single-DPC set-up).")
def cli(site_file: Path, speed: float, port: int | None, broker: str, work_dir: Path, duration: float | None,
        open_browser: bool, poll_s: float, unregistered: int, emergency_after_min: float, emergency_minutes: float,
        no_emergency: bool, n_sites: int) -> None:  # fmt: skip
    """Run the whole system on this machine: simulated sites under quota control, dashboards in a browser.

    \b
    By default (--sites 2) one national HSC registry and two site controllers in two zones, each with its own
    database, simulator and agents; the authority includes the machines it seeds, some stay pending, one points at
    an unaccredited pool, one moves between the sites; endpoints.json in the work dir names every URL and key.
    With --sites 1, one site: an MQTT broker, the controller (SQLite), the simulator (a few hundred miners on
    metered PDUs), two gateway agents; seeds the registry (licensee, subtype-II tenant, DPC, accredited pool; a few
    machines left unregistered, one on an unaccredited pool) and plays a grid day: an hourly schedule,
    then an emergency cut to 30 % and its lifting. Prints the dashboard URL and the demo API keys.
    Ctrl-C (or SIGTERM) stops every part and exits 0.

    \b
    Examples:
      kuat demo                      one national registry, two sites in two zones, real time
      kuat demo --speed 60 --open    an hour per minute, opens a browser
      kuat demo --sites 1 --site sim/sites/small.toml --duration 120
      kuat demo --sites 3            three sites
    """
    logging.getLogger("httpx").setLevel(logging.WARNING)  # readiness polls are not news
    opts = DemoOptions(site_file, speed, port, broker, work_dir.resolve(), duration, open_browser, poll_s, unregistered,
                       None if no_emergency else emergency_after_min, emergency_minutes)  # fmt: skip
    if n_sites >= 2:
        from demo.national import run as run_national

        run_national(opts, n_sites)
        return
    site = load_demo_site(opts.site_file)
    demo = prepare(opts)
    stop_on_signals(demo)
    failure: Exception | None = None
    try:
        start_all(demo, site)
        grid = GridDay(demo)
        grid.start()
        print_banner(demo, grid)
        if opts.open_browser:
            open_in_browser(demo.dashboard_url)
        supervise(demo, grid)
    except Interrupted as exc:
        log.info("stopped while waiting for %s", exc)
    except (ChildDied, TimeoutError, GridError, httpx.HTTPError) as exc:
        failure = exc
        log.error("demo failed: %s", exc)
    finally:
        stop_all(demo)
    if failure is not None:
        raise click.ClickException(f"{failure} (logs: {opts.work_dir / 'logs'})")
    log.info("demo stopped")


# ------------------------------------------------------------------ setup


def prepare(opts: DemoOptions) -> Demo:
    """Ports, keys, the shared simulated clock, an empty work dir."""
    from kuat import clock

    api_port = opts.port or (8080 if port_is_free(8080) else free_port())
    if opts.port and not port_is_free(opts.port):
        raise click.ClickException(f"port {opts.port} on 127.0.0.1 is in use: pick another with --port")
    keys = {role: f"demo-{role}-{secrets.token_urlsafe(12)}" for role in ROLES}
    demo = Demo(opts, api_port, free_port(), free_port(), keys)
    empty_work_dir(opts.work_dir)
    clock.configure(time.time(), opts.speed)  # the children inherit KUAT_CLOCK: one simulated time for all
    return demo


WORK_DIR_MARKER = ".kuat-demo"


def empty_work_dir(path: Path) -> None:
    """Empty the work dir of the last run; refuse a folder the demo did not make (it would delete its files)."""
    running = _running_demo(path)
    if running is not None:
        raise click.ClickException(f"another demo (pid {running}) runs in {path}: stop it, or pass another --work-dir")
    if path.exists() and any(path.iterdir()) and not (path / WORK_DIR_MARKER).exists():
        raise click.ClickException(f"--work-dir {path} is not empty and is not a demo work dir (no {WORK_DIR_MARKER}"
                                   " file): pick an empty or new folder")  # fmt: skip
    if path.exists():
        shutil.rmtree(path)
    (path / "logs").mkdir(parents=True)
    (path / WORK_DIR_MARKER).write_text("made by `kuat demo`: emptied at each start\n")
    (path / "demo.pid").write_text(f"{os.getpid()}\n")


def _running_demo(path: Path) -> int | None:
    """The pid of a live demo that uses this work dir, if any."""
    try:
        pid = int((path / "demo.pid").read_text())
        os.kill(pid, 0)
        command = Path(f"/proc/{pid}/cmdline").read_bytes() if Path("/proc").is_dir() else b"demo"
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() and b"demo" in command else None  # a reused pid is not a demo


def stop_on_signals(demo: Demo) -> None:
    def stop(sig: int, _frame: FrameType | None) -> None:
        if not demo.stopping:
            log.info("%s received: stopping the demo", signal.Signals(sig).name)
        demo.stopping = True
        STOP.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def load_demo_site(path: Path) -> Any:
    """The site file, on a random loopback block (several demos and tests can run side by side)."""
    from sim.site import load_site

    net = random.randint(20, 240)
    try:
        return load_site(path, miner_net=f"127.{net}", pdu_net=f"127.{net + 1}")
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"{path}: {exc}") from None


def start_all(demo: Demo, site: Any) -> None:
    """Broker, simulator, seeded database, controller, agents: each waited for before the next."""
    demo.site_name = site.site.name
    logs = demo.opts.work_dir / "logs"
    start_broker(demo, logs)
    port_offset = 0 if os.geteuid() == 0 else 10000
    sim_args = ["sim", "run", "--site", str(demo.opts.site_file), "--port-offset", str(port_offset), "--control-port",
                str(demo.control_port), "--miner-net", site.site.miner_net, "--pdu-net", site.site.pdu_net]
    sim = demo_child(demo, "sim", kuat_argv(*sim_args), logs)
    wait_until(lambda: _http_ok(f"http://127.0.0.1:{demo.control_port}/state"), "simulator", READY_TIMEOUT_S, [sim])
    write_controller_config(demo)
    seed(demo, site)
    config = demo.opts.work_dir / "controller.yaml"
    ctl = demo_child(demo, "controller", kuat_argv("controller", "run", "--config", str(config)), logs)
    wait_until(lambda: _http_ok(f"{demo.base_url}/healthz"), "controller", READY_TIMEOUT_S, [ctl])
    for gateway in site.site.gateways:
        path = write_agent_config(demo, site, gateway, port_offset)
        demo_child(demo, f"agent-{gateway}", kuat_argv("agent", "run", "--config", str(path)), logs)
    wait_until(lambda: gateways_online(demo) >= len(site.site.gateways), "gateway agents online", READY_TIMEOUT_S,
               demo.children)  # fmt: skip


def demo_child(demo: Demo, name: str, argv: list[str], logs: Path) -> Child:
    child = Child(name, argv, logs).start()
    demo.children.append(child)
    return child


def start_broker(demo: Demo, logs: Path) -> None:
    from demo.broker import find_mosquitto, mosquitto_conf

    mosquitto = find_mosquitto() if demo.opts.broker in ("auto", "mosquitto") else None
    if demo.opts.broker == "mosquitto" and mosquitto is None:
        raise click.ClickException("mosquitto is not installed (Debian: apt-get install mosquitto); try --broker amqtt")
    if mosquitto:
        conf = mosquitto_conf(demo.opts.work_dir / "mosquitto.conf", demo.broker_port)
        broker = demo_child(demo, "broker", [mosquitto, "-c", str(conf)], logs)
    else:
        argv = [sys.executable, "-m", "demo.broker", "--port", str(demo.broker_port)]
        broker = demo_child(demo, "broker", argv, logs)
    wait_until(lambda: port_open("127.0.0.1", demo.broker_port), "MQTT broker", READY_TIMEOUT_S, [broker])


def write_controller_config(demo: Demo) -> Path:
    data: dict[str, Any] = {
        "database_url": f"sqlite:///{demo.opts.work_dir / 'kuat.sqlite'}",
        "broker": {"host": "127.0.0.1", "port": demo.broker_port, "client_id": f"kuat-demo-{demo.broker_port}"},
        "sites": [demo.site_name],
        "api": {"host": "127.0.0.1", "port": demo.api_port},
        "api_keys": [{"name": f"demo-{role}", "role": role, "key": key} for role, key in demo.keys.items()],
        "gateway_timeout_s": 30.0,
        "compliance_check_s": 30.0,
        "sightings_flush_s": 2.0,
        "rollup_flush_s": 20.0,
        # the single-site demo: the site-era registry in this controller (violations, approval from the dashboard),
        # no registry link to decide power rights, so the explicit lab opt-out (a warning at every start);
        # `kuat demo --sites 2` runs the link to a national registry
        "registry": {"mode": "none_lab"},
    }
    path = demo.opts.work_dir / "controller.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_agent_config(demo: Demo, site: Any, gateway: str, port_offset: int) -> Path:
    from sim.agent_config import write_agent_config as write

    path = demo.opts.work_dir / f"agent-{gateway}.yaml"
    buffer = demo.opts.work_dir / f"agent-{gateway}-buffer.sqlite"
    return write(path, site, gateway, broker_port=demo.broker_port, port_offset=port_offset, buffer_path=buffer,
                 interval_s=demo.opts.poll_s)


def seed(demo: Demo, site: Any) -> None:
    """The registry, written before the controller starts (it then reads owners from it)."""
    from controller.runtime import make_database, make_registry
    from demo.seed import seed_registry

    logging.getLogger("registry").setLevel(logging.WARNING)  # one line per seeded machine is noise here
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = make_database(f"sqlite:///{demo.opts.work_dir / 'kuat.sqlite'}")
    try:
        capacity_mw = max(1.0, round(sum_nominal_w(site) * 1.25 / 1e6, 1))
        seed_registry(make_registry(engine), site, demo.opts.unregistered, capacity_mw)
    finally:
        engine.dispose()


def sum_nominal_w(site: Any) -> float:
    from kuat.catalog import MODELS

    return float(sum(MODELS[m.model].nominal_w for m in site.miners))


def gateways_online(demo: Demo) -> int:
    with demo.client() as c:
        r = c.get("/api/v1/gateways")
    return sum(1 for g in r.json()["gateways"] if g.get("online")) if r.status_code == 200 else 0


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


# ------------------------------------------------------------------ run and stop


def print_banner(demo: Demo, grid: Any) -> None:
    line = "=" * 78
    click.echo(f"\n{line}\n Kuat demo is running: site {demo.site_name!r}, {len(demo.children)} processes, "
               f"speed x{demo.opts.speed:g}\n\n Dashboard:  {demo.dashboard_url}\n API docs:   {demo.base_url}/docs\n\n"
               " Demo API keys (send as X-API-Key):")  # fmt: skip
    for role, key in demo.keys.items():
        click.echo(f"   {role:<10} {key}")
    click.echo(f"\n Grid day:   {grid.describe()}\n Logs:       {demo.opts.work_dir / 'logs'}\n\n"
               f" Ctrl-C stops everything.\n{line}\n")  # fmt: skip


def open_in_browser(url: str) -> None:
    try:
        opened = webbrowser.open(url)
    except webbrowser.Error:
        opened = False
    if not opened:
        log.warning("no browser found: open %s yourself", url)


def supervise(demo: Demo, grid: Any) -> None:
    """Until Ctrl-C/SIGTERM or --duration: play the grid script, and stop if a part dies."""
    ends = time.monotonic() + demo.opts.duration if demo.opts.duration else None
    while not demo.stopping and (ends is None or time.monotonic() < ends):
        for child in demo.children:
            if not child.alive():
                raise ChildDied(child)
        grid.tick()
        time.sleep(0.5)


def stop_all(demo: Demo) -> None:
    """Agents first (they say goodbye on MQTT), then the controller (writes its last rollups), sim, broker."""
    for child in reversed(demo.children):
        child.stop()
