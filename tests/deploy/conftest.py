"""Fixtures for the deployment tests: one scratch deployment per session (the playbook runs twice), a simulated
rack for gateway gw1 (so the installed agent has real devices to poll), and the broker the role configured."""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.scratch import (
    PROJECT,
    GatewaySpec,
    PlaybookRun,
    ScratchDeployment,
    ansible_playbook,
    random_secret,
)
from tests.support.postgres import PostgresCluster
from tests.support.servers import free_port, require_binary, stop_process, wait_port

SIM_SITE = """\
[site]
name = "deploy-test"
gateways = ["gw1", "gw2"]

[[racks]]
name = "A01"
gateway = "gw1"
pdus = ["apc_rpdu2"]
outlets_per_pdu = 4
miners = [
  { model = "S19j Pro", firmware = "bmminer", count = 2 },
  { model = "S19j Pro", firmware = "luxos", count = 1 },
]
"""


@dataclass
class SimRack:
    site_file: Path
    miner_net: str
    pdu_net: str
    port_offset: int
    gw1: GatewaySpec


@dataclass
class Deployed:
    scratch: ScratchDeployment
    first: PlaybookRun
    second: PlaybookRun
    rack: SimRack
    postgres: PostgresCluster | None  # the controller role created its database and user here
    postgres_missing: str = ""  # why there is none


def _sim_rack(base: Path) -> SimRack:
    """A 3-miner rack behind gw1 on a random loopback block, and gw1's inventory entry for it."""
    from sim.site import load_site

    site_file = base / "sim-site.toml"
    site_file.write_text(SIM_SITE)
    first = random.randint(20, 240)
    miner_net, pdu_net = f"127.{first}", f"127.{first + 1}"
    port_offset = random.randint(20000, 40000)
    site = load_site(site_file, miner_net=miner_net, pdu_net=pdu_net)
    miners = [m for m in site.miners if m.gateway == "gw1"]
    gw1 = GatewaySpec(
        "gw1",
        miners=[{"ip": m.ip} for m in miners],
        pdus=[{"ip": p.ip, "id": p.id, "community": p.community, "write_community": p.write_community}
              for p in site.pdus],
        outlet_map={m.ip: {"pdu": m.pdu, "outlet": m.outlet} for m in miners if m.ip and m.pdu and m.outlet},
        port_offset=port_offset,
    )
    return SimRack(site_file, miner_net, pdu_net, port_offset, gw1)


def _private_postgres() -> tuple[PostgresCluster | None, str]:
    """A private PostgreSQL for the controller role's database tasks, or why there is none."""
    try:
        return PostgresCluster().start(), ""
    except pytest.skip.Exception as exc:
        return None, str(exc)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"PostgreSQL did not start: {exc}"


def _postgres_vars(cluster: PostgresCluster | None) -> dict[str, object]:
    if cluster is None:
        return {"kuat_manage_postgresql": False}
    return {
        "kuat_manage_postgresql": True,
        "kuat_postgres_become": False,
        "kuat_postgres_login_host": "127.0.0.1",
        "kuat_postgres_login_port": cluster.port,
        "kuat_postgres_login_user": "postgres",
        "kuat_db_host": "127.0.0.1",
        "kuat_db_port": cluster.port,
        # the postgresql modules need psycopg2, which the project's virtualenv has
        "ansible_python_interpreter": str(PROJECT / ".venv/bin/python"),
    }


@pytest.fixture(scope="session")
def deployed() -> Iterator[Deployed]:
    """The site playbook run twice into scratch roots (controller ctl with a private PostgreSQL, gateway gw1)."""
    if ansible_playbook() is None:
        pytest.skip("ansible-playbook not installed (Debian package ansible; scripts/bootstrap.sh installs it as root)")
    base = Path(tempfile.mkdtemp(prefix="kuat-deploy-"))
    rack = _sim_rack(base)
    site = f"site-{random.randint(1000, 9999)}"
    postgres, postgres_missing = _private_postgres()
    # gw2 is a gateway the controller knows from kuat_mqtt_extra_gateways (not an inventory host): the broker tests
    # need its MQTT user and ACL; nothing polls for it.
    scratch = ScratchDeployment(base, site, [rack.gw1], free_port(), controller_vars={
        "kuat_mqtt_extra_gateways": [{"site": site, "gateway": "gw2", "user": "gw2"}],
        "kuat_controller_api_port": free_port(),
        **_postgres_vars(postgres),
    })
    scratch.passwords["gw2"] = random_secret()
    try:
        scratch.prepare()
        first = scratch.run()
        if first.returncode != 0:
            pytest.fail("site playbook failed:\n" + "\n".join(first.failure_messages()))
        second = scratch.run()
        yield Deployed(scratch, first, second, rack, postgres, postgres_missing)
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


class RenderedBroker:
    """mosquitto started with the controller role's rendered conf.d (TLS listener, password file, ACL)."""

    def __init__(self, deployed: Deployed) -> None:
        self.binary = require_binary("mosquitto")
        self.scratch = deployed.scratch
        self.port = deployed.scratch.mqtt_tls_port
        mosquitto_dir = deployed.scratch.root("ctl") / "etc/mosquitto"
        self.ca = mosquitto_dir / "certs/kuat-ca.crt"
        self.conf = deployed.scratch.base / "mosquitto-main.conf"
        # What Debian's /etc/mosquitto/mosquitto.conf does, minus the system paths; `user root` because the
        # scratch files belong to root rather than to the mosquitto group the role sets on a real host.
        self.conf.write_text(f"user root\npersistence false\nlog_dest stderr\ninclude_dir {mosquitto_dir}/conf.d\n")
        self.log = deployed.scratch.base / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RenderedBroker:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log)
        try:
            wait_port("127.0.0.1", self.port)
        except TimeoutError as exc:
            self.stop()
            raise AssertionError("mosquitto did not start with the rendered config:\n" + self.log.read_text()) from exc
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@pytest.fixture(scope="session")
def rendered_broker(deployed: Deployed) -> Iterator[RenderedBroker]:
    broker = RenderedBroker(deployed).start()
    yield broker
    broker.stop()
