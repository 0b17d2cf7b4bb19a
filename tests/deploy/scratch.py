"""A scratch deployment: the real site playbook, run with a local connection into per-host scratch roots.

Every inventory host (one controller, N gateways) is "this machine" with its own `kuat_root`, so the tree each
host would get lands in <tmp>/<host>/ (etc/kuat, etc/mosquitto, etc/systemd/system, var/lib/kuat, ...) and nothing
outside it is touched: kuat_manage_services=false skips users, apt and systemctl. Secrets come from a real
ansible-vault file; certificates from deploy/tls/make-certs.sh.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = PROJECT / "ansible"
PLAYBOOK_TIMEOUT_S = 300


@dataclass
class GatewaySpec:
    """One gateway host of the scratch inventory and the devices it polls."""

    name: str
    miners: list[dict[str, Any]] = field(default_factory=list)
    pdus: list[dict[str, Any]] = field(default_factory=list)
    outlet_map: dict[str, dict[str, Any]] = field(default_factory=dict)
    port_offset: int = 0


@dataclass
class PlaybookRun:
    returncode: int
    stats: dict[str, dict[str, int]]
    output: str

    def total(self, key: str) -> int:
        return sum(host.get(key, 0) for host in self.stats.values())

    def failure_messages(self) -> list[str]:
        """The `msg` of every failed task in the JSON callback's output."""
        try:
            data = json.loads(self.output[self.output.index("{") :])
        except ValueError:
            return [self.output[-3000:]]
        messages = []
        for play in data.get("plays", []):
            for task in play.get("tasks", []):
                for host, result in task.get("hosts", {}).items():
                    if result.get("failed"):
                        items = [r.get("msg") for r in result.get("results", []) if r.get("failed")]
                        for msg in items or [result.get("msg")]:
                            messages.append(f"{host}: {task['task']['name']}: {msg}")
        return messages


def random_secret() -> str:
    return secrets.token_urlsafe(24)


def ansible_playbook() -> str | None:
    return shutil.which("ansible-playbook")


class ScratchDeployment:
    """Builds the inventory, vault and certificates under `base`, and runs ansible/site.yml against them."""

    def __init__(self, base: Path, site: str, gateways: list[GatewaySpec], mqtt_tls_port: int,
                 controller_vars: dict[str, Any] | None = None) -> None:
        self.base = base
        self.controller_vars = {"kuat_registry_standalone": True, **(controller_vars or {})}
        self.site = site
        self.gateways = gateways
        self.mqtt_tls_port = mqtt_tls_port
        self.inventory_dir = base / "inventory"
        self.certs = base / "certs"
        self.vault_password_file = base / "vault-password"
        self.passwords = {"kuat-controller": random_secret(), **{g.name: random_secret() for g in gateways}}
        self.api_key = random_secret()
        self.db_password = random_secret()

    def root(self, host: str) -> Path:
        return self.base / "hosts" / host

    def prepare(self) -> None:
        self._make_certs()
        self._write_inventory()
        self._write_vault()

    def _make_certs(self) -> None:
        subprocess.run(
            ["bash", str(PROJECT / "deploy/tls/make-certs.sh"), str(self.certs), "localhost", "127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )

    def _host_vars(self, host: str) -> dict[str, Any]:
        root = str(self.root(host))
        return {"kuat_root": root, "kuat_runtime_root": root}

    def _write_inventory(self) -> None:
        gateways = {
            g.name: {
                **self._host_vars(g.name),
                "kuat_agent_miners": g.miners,
                "kuat_agent_pdus": g.pdus,
                "kuat_agent_outlet_map": g.outlet_map,
                "kuat_agent_port_offset": g.port_offset,
            }
            for g in self.gateways
        }
        inventory = {
            "all": {
                "children": {
                    "kuat_controllers": {"hosts": {"ctl": self._host_vars("ctl") | self.controller_vars}},
                    "kuat_gateways": {"hosts": gateways},
                }
            }
        }
        group_vars = {
            "ansible_connection": "local",
            "ansible_python_interpreter": shutil.which("python3") or "/usr/bin/python3",
            "kuat_manage_services": False,
            "kuat_production": True,
            "kuat_venv_python": str(PROJECT / ".venv/bin/python"),
            "kuat_site": self.site,
            "kuat_mqtt_broker_host": "127.0.0.1",
            "kuat_mqtt_bind_address": "127.0.0.1",
            "kuat_mqtt_tls_port": self.mqtt_tls_port,
            "kuat_mqtt_local_port": 0,
            "kuat_mqtt_tls_ca_cert": (self.certs / "ca.crt").read_text(),
            "kuat_mqtt_tls_server_cert": (self.certs / "server.crt").read_text(),
            "kuat_agent_poll_interval_s": 2,
            "kuat_agent_device_timeout_s": 3,
            "kuat_agent_device_credentials": "{{ vault_device_credentials }}",
            "kuat_agent_default_credentials": "stock",
            "kuat_mqtt_passwords": "{{ vault_mqtt_passwords }}",
            "kuat_mqtt_tls_server_key": "{{ vault_server_key }}",
            "kuat_db_password": "{{ vault_db_password }}",
            "kuat_controller_api_keys": [{"name": "ops", "role": "operator", "key": "{{ vault_api_key }}"}],
        }
        (self.inventory_dir / "group_vars/all").mkdir(parents=True, exist_ok=True)
        (self.inventory_dir / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        (self.inventory_dir / "group_vars/all/main.yml").write_text(yaml.safe_dump(group_vars, sort_keys=False))

    def _write_vault(self) -> None:
        vault = {
            "vault_mqtt_passwords": self.passwords,
            "vault_server_key": (self.certs / "server.key").read_text(),
            "vault_db_password": self.db_password,
            "vault_api_key": self.api_key,
            "vault_device_credentials": {"stock": {"username": "root", "password": "root"}},
        }
        self.vault_password_file.write_text(random_secret() + "\n")
        path = self.inventory_dir / "group_vars/all/vault.yml"
        path.write_text(yaml.safe_dump(vault))
        subprocess.run(
            ["ansible-vault", "encrypt", "--vault-password-file", str(self.vault_password_file), str(path)],
            check=True, capture_output=True, timeout=60, env=self.env(),
        )

    def env(self) -> dict[str, str]:
        tmp = self.base / "ansible-tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": str(ANSIBLE_DIR / "roles"),
            "ANSIBLE_HOME": str(tmp / "home"),
            "ANSIBLE_LOCAL_TEMP": str(tmp / "local"),
            "ANSIBLE_REMOTE_TEMP": str(tmp / "remote"),
            "ANSIBLE_STDOUT_CALLBACK": "json",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_PIPELINING": "1",
        }

    def run(self, *extra: str, inventory: Path | None = None) -> PlaybookRun:
        cmd = [
            "ansible-playbook", "-i", str(inventory or self.inventory_dir / "hosts.yml"),
            "--vault-password-file", str(self.vault_password_file), str(ANSIBLE_DIR / "site.yml"), *extra,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT_S, env=self.env(),
                              cwd=ANSIBLE_DIR)
        stats: dict[str, dict[str, int]] = {}
        try:
            stats = json.loads(proc.stdout[proc.stdout.index("{") :]).get("stats", {})
        except ValueError:
            pass
        return PlaybookRun(proc.returncode, stats, proc.stdout + proc.stderr)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY='value' lines as systemd's EnvironmentFile= reads them (single quotes removed)."""
    env = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        env[name] = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value
    return env
