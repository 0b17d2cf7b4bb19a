"""The site playbook, run for real (local connection, scratch roots): idempotent, and what it writes is usable."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import Deployed
from tests.deploy.scratch import ANSIBLE_DIR, GatewaySpec, ScratchDeployment, read_env_file
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_installs_and_second_run_changes_nothing(deployed: Deployed) -> None:
    assert deployed.first.total("changed") > 0
    assert deployed.second.returncode == 0, deployed.second.failure_messages()
    changed = {host: s["changed"] for host, s in deployed.second.stats.items()}
    assert changed == {"ctl": 0, "gw1": 0}
    assert deployed.second.total("failures") == 0


def test_every_file_lands_under_the_scratch_root(deployed: Deployed) -> None:
    ctl, gw1 = deployed.scratch.root("ctl"), deployed.scratch.root("gw1")
    for path in [
        ctl / "etc/kuat/controller.yaml",
        ctl / "etc/kuat/controller.env",
        ctl / "etc/mosquitto/conf.d/kuat.conf",
        ctl / "etc/mosquitto/kuat.acl",
        ctl / "etc/mosquitto/kuat.passwd",
        ctl / "etc/systemd/system/kuat-controller.service",
        gw1 / "etc/kuat/agent.yaml",
        gw1 / "etc/kuat/agent.env",
        gw1 / "etc/kuat/mqtt-ca.crt",
        gw1 / "etc/systemd/system/kuat-agent.service",
        gw1 / "etc/logrotate.d/kuat",
    ]:
        assert path.is_file(), f"{path} was not written"
    assert (gw1 / "var/lib/kuat").is_dir()


def test_secrets_are_root_only_and_hashed_at_rest(deployed: Deployed) -> None:
    ctl, gw1 = deployed.scratch.root("ctl"), deployed.scratch.root("gw1")
    assert mode(ctl / "etc/kuat/controller.env") == 0o600
    assert mode(gw1 / "etc/kuat/agent.env") == 0o600
    assert mode(gw1 / "etc/kuat/agent.yaml") == 0o640
    assert mode(ctl / "etc/mosquitto/certs/kuat-server.key") == 0o640
    passwd = (ctl / "etc/mosquitto/kuat.passwd").read_text()
    for user, password in deployed.scratch.passwords.items():
        assert password not in passwd
        assert re.search(rf"^{re.escape(user)}:\$7\$101\$", passwd, re.M), f"{user} has no PBKDF2 entry"
    # Clear-text MQTT passwords live only in the root-only env files, never in the configs or the unit files.
    for path in ctl.rglob("*"):
        if path.is_file() and path.suffix != ".env":
            text = path.read_text(errors="replace")
            assert not any(p in text for p in deployed.scratch.passwords.values()), f"a password is in {path}"


def set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_agent_config_is_accepted_by_the_agent_with_outlets_and_credentials(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.config import load_config

    gw1 = deployed.scratch.root("gw1")
    env = read_env_file(gw1 / "etc/kuat/agent.env")
    assert env == {"KUAT_AGENT_BROKER__PASSWORD": deployed.scratch.passwords["gw1"]}
    set_env(monkeypatch, env)
    config = load_config(gw1 / "etc/kuat/agent.yaml")
    assert (config.site, config.gateway, config.production) == (deployed.scratch.site, "gw1", True)
    assert config.broker.password == deployed.scratch.passwords["gw1"]
    assert config.broker.tls is not None and config.broker.tls.ca == gw1 / "etc/kuat/mqtt-ca.crt"
    assert config.buffer.path == gw1 / "var/lib/kuat/agent-buffer.sqlite"
    spec = deployed.rack.gw1
    assert [m.ip for m in config.devices.miners] == [m["ip"] for m in spec.miners]
    outlets = {m.ip: (m.outlet.pdu, m.outlet.outlet) for m in config.devices.miners if m.outlet}
    assert outlets == {ip: (o["pdu"], o["outlet"]) for ip, o in spec.outlet_map.items()}
    assert {(m.credentials.username, m.credentials.password) for m in config.devices.miners} == {("root", "root")}
    assert config.port_offset == spec.port_offset


def test_controller_settings_are_accepted_with_secrets_from_the_env_file(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controller.settings import load_settings

    ctl = deployed.scratch.root("ctl")
    env = read_env_file(ctl / "etc/kuat/controller.env")
    assert json.loads(env["KUAT_CONTROLLER_API_KEYS"]) == [
        {"name": "ops", "role": "operator", "key": deployed.scratch.api_key}
    ]
    set_env(monkeypatch, env)
    settings = load_settings(ctl / "etc/kuat/controller.yaml")
    assert settings.production is True
    assert settings.sites == [deployed.scratch.site]
    host = f"127.0.0.1:{deployed.postgres.port}" if deployed.postgres else "localhost:5432"
    assert settings.database_url == f"postgresql+psycopg2://kuat:{deployed.scratch.db_password}@{host}/kuat"
    assert settings.broker.password == deployed.scratch.passwords["kuat-controller"]
    assert (settings.broker.port, settings.broker.tls) == (deployed.scratch.mqtt_tls_port, True)


def test_units_pass_systemd_analyze_verify_and_are_sandboxed(deployed: Deployed) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    units = [
        deployed.scratch.root("gw1") / "etc/systemd/system/kuat-agent.service",
        deployed.scratch.root("ctl") / "etc/systemd/system/kuat-controller.service",
        deployed.scratch.root("ctl") / "etc/systemd/system/kuat-registry.service",
    ]
    for unit in units:
        text = unit.read_text()
        for directive in ("Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                          "ProtectHome=yes", "ReadWritePaths=", "EnvironmentFile=", "User=kuat"):
            assert directive in text, f"{unit.name} lacks {directive}"
        verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert (verify.returncode, verify.stderr.strip()) == (0, ""), f"{unit.name}: {verify.stderr}"
        security = subprocess.run([analyze, "security", "--offline=true", str(unit)],
                                  capture_output=True, text=True, timeout=60)
        match = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout + security.stderr)
        assert match, security.stdout + security.stderr
        # systemd rates 0-10 (10 = unprotected); below 3 is "OK" in its own scale.
        assert float(match.group(1)) < 3.0, f"{unit.name}: exposure {match.group(1)}"


def test_logrotate_config_parses(deployed: Deployed) -> None:
    logrotate = shutil.which("logrotate") or ("/usr/sbin/logrotate" if Path("/usr/sbin/logrotate").exists() else None)
    if logrotate is None:
        pytest.skip("logrotate not installed (Debian package logrotate)")
    conf = deployed.scratch.root("gw1") / "etc/logrotate.d/kuat"
    log_dir = deployed.scratch.root("gw1") / "var/log/kuat"
    (log_dir / "agent.log").write_text("line\n")
    state = deployed.scratch.base / "logrotate.state"
    result = subprocess.run([logrotate, "--debug", "--state", str(state), str(conf)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"considering log {log_dir}/agent.log" in result.stderr


def _one_gateway_scratch(tmp_path: Path, **gw: object) -> ScratchDeployment:
    spec = GatewaySpec("gw1", **gw)  # type: ignore[arg-type]
    scratch = ScratchDeployment(tmp_path, "badsite", [spec], free_port())
    scratch.prepare()
    return scratch


def test_placeholder_secrets_are_refused_in_production(tmp_path: Path) -> None:
    scratch = _one_gateway_scratch(tmp_path, miners=[{"ip": "127.0.0.98"}])
    scratch.passwords["gw1"] = "CHANGE-ME-gw1-password"
    scratch._write_vault()
    run = scratch.run()
    assert run.returncode != 0
    messages = "\n".join(run.failure_messages())
    assert "MQTT password of gw1 is a placeholder" in messages
    assert "gw1" in messages
    assert not (scratch.root("ctl") / "etc/mosquitto/kuat.passwd").exists()
    assert not (scratch.root("gw1") / "etc/kuat/agent.env").exists()


def test_outlet_map_naming_an_unknown_pdu_stops_the_play_with_its_name(tmp_path: Path) -> None:
    scratch = _one_gateway_scratch(
        tmp_path, miners=[{"ip": "127.0.0.97"}], pdus=[{"ip": "127.0.0.96", "id": "pdu-x"}],
        outlet_map={"127.0.0.97": {"pdu": "pdu-typo", "outlet": 1}},
    )
    run = scratch.run("--limit", "gw1")
    assert run.returncode != 0
    assert "pdu-typo" in "\n".join(run.failure_messages())
    assert not (scratch.root("gw1") / "etc/kuat/agent.yaml").exists()


def test_example_inventory_parses_with_its_vault() -> None:
    inventory = ANSIBLE_DIR / "inventory/example/hosts.yml"
    result = subprocess.run(
        ["ansible-inventory", "-i", str(inventory), "--vault-password-file",
         str(ANSIBLE_DIR / "inventory/example/vault-password.example"), "--list"],
        capture_output=True, text=True, timeout=120, cwd=ANSIBLE_DIR,
    )
    if result.returncode != 0 and shutil.which("ansible-inventory") is None:
        pytest.skip("ansible-inventory not installed (Debian package ansible)")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert sorted(data["kuat_gateways"]["hosts"]) == ["gw-a1", "gw-a2"]
    assert data["kuat_controllers"]["hosts"] == ["kuat-ctl-01"]
    gw_a1 = data["_meta"]["hostvars"]["gw-a1"]
    assert len(gw_a1["kuat_agent_outlet_map"]) == len(gw_a1["kuat_agent_miners"])
    vault = yaml.safe_load((ANSIBLE_DIR / "vault.example.yml").read_text())
    assert set(vault["vault_kuat_mqtt_passwords"]) == {"kuat-controller", "gw-a1", "gw-a2"}


def test_ansible_lint_is_clean() -> None:
    lint = shutil.which("ansible-lint")
    if lint is None:
        pytest.skip("ansible-lint not installed (Debian package ansible-lint; scripts/bootstrap.sh installs it)")
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ANSIBLE_DIR / "roles")}
    result = subprocess.run([lint, "--offline", "-p", "site.yml", "roles"], capture_output=True, text=True,
                            timeout=300, cwd=ANSIBLE_DIR, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
