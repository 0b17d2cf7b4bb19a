"""The agent over a real mosquitto (in-test drivers for the devices): one telemetry batch per cycle, retained state,
commands answered with acks whose effect shows in telemetry, the lease failsafe, MQTT 5 with a password, TLS."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kuat.wire import v1
from tests.agent.mqtt_support import Controller, agent_config, running_agent, wait_until
from tests.agent.runtime_fakes import fake_site
from tests.support.servers import Mosquitto, require_binary

pytestmark = pytest.mark.integration

# mosquitto started as root drops to its own user and could then not read files in pytest's private tmp dirs
KEEP_USER = "user root\n" if os.geteuid() == 0 else ""


def _password_conf(tmp_path: Path) -> str:
    passwd = require_binary("mosquitto_passwd", "mosquitto")
    pwfile = tmp_path / "passwd"
    subprocess.run([passwd, "-c", "-b", str(pwfile), "gw1", "s3cret-Pw"], check=True, capture_output=True)
    pwfile.chmod(0o600)
    return f"{KEEP_USER}allow_anonymous false\npassword_file {pwfile}\n"


async def test_telemetry_state_and_clean_shutdown(broker: Mosquitto, tmp_path: Path) -> None:
    site, devices = fake_site(3)
    ctl = Controller(broker.port, "t1", "gw1")
    try:
        async with running_agent(agent_config(tmp_path, broker.port, devices), site):
            await wait_until(lambda: len(ctl.batches) >= 3, 10, "three telemetry batches")
            await wait_until(lambda: any(s.online for s in ctl.states), 5, "the online state")
        await wait_until(lambda: bool(ctl.states) and not ctl.states[-1].online, 5, "the offline state")
    finally:
        ctl.close()
    seqs = [b.seq for b in ctl.batches]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] == 1
    batch = ctl.batches[-1]
    assert (batch.site, batch.gateway, batch.historical) == ("t1", "gw1", False)
    assert [m.device_id for m in batch.miners] == ["m1", "m2", "m3"]
    assert all(m.power_source == v1.PowerSource.PDU and m.power_w == 3003.0 for m in batch.miners)
    assert batch.pdus[0].power_w == pytest.approx(3 * 3003.0)
    assert batch.lease is not None and batch.lease.failsafe_active is False
    assert ctl.states[0].devices == 4
    # a newcomer gets the retained state: offline after a clean shutdown
    late = Controller(broker.port, "t1", "gw1")
    try:
        await wait_until(lambda: bool(late.states), 5, "the retained state")
        assert late.states[0].online is False
    finally:
        late.close()


async def test_commands_are_acked_and_their_effect_shows_in_telemetry(broker: Mosquitto, tmp_path: Path) -> None:
    site, devices = fake_site(3)
    ctl = Controller(broker.port, "t1", "gw1")
    try:
        async with running_agent(agent_config(tmp_path, broker.port, devices), site):
            await wait_until(lambda: ctl.latest() is not None, 10, "first telemetry")
            sent_at = time.time()
            ctl.send(v1.Command(id="cmd-1", kind=v1.CommandKind.SLEEP, device_id="m2"))
            ack = await ctl.ack_for("cmd-1")
            assert (ack.status, ack.gateway, ack.duplicate) == (v1.AckStatus.APPLIED, "gw1", False)
            batch = await ctl.batch_after(sent_at, lambda b: b.miners[1].state == v1.MinerState.SLEEPING
                                          and b.miners[1].power_w == 28.0)  # 25 W asleep + 3 W losses, at the outlet
            assert batch.miners[0].state == v1.MinerState.MINING

            ctl.send(v1.Command(id="cmd-1", kind=v1.CommandKind.SLEEP, device_id="m2"))  # the same id again
            again = await ctl.ack_for("cmd-1", nth=2)
            assert again.duplicate and again.status == v1.AckStatus.APPLIED
            assert site.miners["127.77.0.2"].calls == ["sleep"]

            ctl.send(v1.Command(id="cmd-2", kind=v1.CommandKind.OUTLET_OFF, device_id="pdu-a", outlet=3))
            assert (await ctl.ack_for("cmd-2")).status == v1.AckStatus.APPLIED
            site.miners["127.77.0.1"].can_power_target = False
            ctl.send(v1.Command(id="cmd-3", kind=v1.CommandKind.SET_POWER_TARGET, device_id="m1", power_w=2500))
            rejected = await ctl.ack_for("cmd-3")
            assert rejected.status == v1.AckStatus.REJECTED and "no power target" in (rejected.reason or "")
            ctl.send(b'{"id": "cmd-4", "kind": "sleep"}')
            bad = await ctl.ack_for("cmd-4")
            assert bad.status == v1.AckStatus.REJECTED and "sleep needs device_id" in (bad.reason or "")
            t = time.time()
            await ctl.batch_after(t, lambda b: not b.miners[2].available and b.miners[2].power_w == 0.0)
    finally:
        ctl.close()


async def test_lease_expiry_over_mqtt_puts_the_site_in_its_safe_state(broker: Mosquitto, tmp_path: Path) -> None:
    site, devices = fake_site(3)
    devices["miners"][0]["protected"] = True  # type: ignore[index]
    cfg = agent_config(tmp_path, broker.port, devices, failsafe={"grace_s": 0.5})
    ctl = Controller(broker.port, "t1", "gw1")
    try:
        async with running_agent(cfg, site):
            await wait_until(lambda: ctl.latest() is not None, 10, "first telemetry")
            sps = [v1.Setpoint(device_id=f"m{i}", mode=v1.SetpointMode.RUN) for i in (1, 2, 3)]
            ctl.send(v1.Command(id="lease-1", kind=v1.CommandKind.SETPOINTS, setpoints=sps, lease_s=1.0))
            assert (await ctl.ack_for("lease-1")).status == v1.AckStatus.APPLIED
            batch = await ctl.batch_after(time.time(), lambda b: b.lease is not None and b.lease.failsafe_active)
            assert batch.lease is not None and batch.lease.batch_id == "lease-1" and batch.lease.expired
            batch = await ctl.batch_after(time.time(), lambda b: b.miners[1].state == v1.MinerState.SLEEPING
                                          and b.miners[2].state == v1.MinerState.SLEEPING)
            assert batch.miners[0].state == v1.MinerState.MINING  # protected
            ctl.send(v1.Command(id="lease-2", kind=v1.CommandKind.SETPOINTS, setpoints=sps, lease_s=60))
            assert (await ctl.ack_for("lease-2")).status == v1.AckStatus.APPLIED
            batch = await ctl.batch_after(time.time(), lambda b: b.lease is not None and not b.lease.failsafe_active)
            await ctl.batch_after(time.time(), lambda b: all(m.state == v1.MinerState.MINING for m in b.miners))
    finally:
        ctl.close()


async def test_mqtt5_with_username_and_password(tmp_path: Path) -> None:
    with Mosquitto(extra_conf=_password_conf(tmp_path)) as broker:
        site, devices = fake_site(2)
        cfg = agent_config(tmp_path, broker.port, devices,
                           broker={"protocol": "5", "username": "gw1", "password": "s3cret-Pw"})
        got: list[bytes] = []
        watcher = _raw_subscriber(broker.port, "gw1", "s3cret-Pw", got)
        try:
            async with running_agent(cfg, site):
                await wait_until(lambda: len(got) >= 2, 10, "telemetry over MQTT 5")
        finally:
            watcher.disconnect()
            watcher.loop_stop()
        assert v1.TelemetryBatch.model_validate_json(got[0]).miners[0].device_id == "m1"


async def test_wrong_password_is_logged_and_telemetry_waits_in_the_buffer(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    with Mosquitto(extra_conf=_password_conf(tmp_path)) as broker:
        site, devices = fake_site(1)
        cfg = agent_config(tmp_path, broker.port, devices, broker={"username": "gw1", "password": "wrong"})
        async with running_agent(cfg, site) as agent:
            await wait_until(lambda: agent.buffer.count() >= 3, 10, "batches piling up in the buffer")
            await wait_until(lambda: "refused the connection" in caplog.text, 10, "the refusal in the log")
            assert agent.publisher.published == 0


def _signed(openssl: str, tmp_path: Path, name: str, cn: str, ca: Path, ca_key: Path) -> tuple[Path, Path]:
    """A key and a certificate for `cn` (also as IP SAN 127.0.0.1) signed by the test CA."""
    key, csr, cert, ext = (tmp_path / f"{name}.{x}" for x in ("key", "csr", "pem", "cnf"))
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", f"/CN={cn}"], check=True, capture_output=True)
    subprocess.run([openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(ext)],
                   check=True, capture_output=True)
    return key, cert


def _tls_material(tmp_path: Path) -> dict[str, Path]:
    openssl = require_binary("openssl")
    ca_key, ca = tmp_path / "ca.key", tmp_path / "ca.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
                    str(ca), "-days", "1", "-subj", "/CN=kuat-test-ca"], check=True, capture_output=True)
    srv_key, srv_cert = _signed(openssl, tmp_path, "broker", "127.0.0.1", ca, ca_key)
    gw_key, gw_cert = _signed(openssl, tmp_path, "gw1", "kuat-t1-gw1", ca, ca_key)
    return {"ca": ca, "srv_key": srv_key, "srv_cert": srv_cert, "gw_key": gw_key, "gw_cert": gw_cert}


async def test_tls_with_a_private_ca_and_a_client_certificate(tmp_path: Path) -> None:
    pki = _tls_material(tmp_path)
    conf = (f"{KEEP_USER}cafile {pki['ca']}\ncertfile {pki['srv_cert']}\nkeyfile {pki['srv_key']}\n"
            "require_certificate true\n")
    with Mosquitto(extra_conf=conf) as broker:
        site, devices = fake_site(1)
        tls = {"ca": str(pki["ca"]), "cert": str(pki["gw_cert"]), "key": str(pki["gw_key"])}
        cfg = agent_config(tmp_path, broker.port, devices, broker={"tls": tls})
        async with running_agent(cfg, site) as agent:
            await wait_until(lambda: agent.publisher.published >= 2, 15, "telemetry acknowledged over mutual TLS")
        assert agent.publisher.connected is False


def _raw_subscriber(port: int, user: str, password: str, sink: list[bytes]) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-v5-watch", protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_message = lambda _c, _u, msg: sink.append(bytes(msg.payload))
    c.connect("127.0.0.1", port)
    c.subscribe(v1.topic("t1", "gw1", "telemetry"), qos=1)
    c.loop_start()
    return c

