"""`kuat controller run` as a real process: starts, ingests through mosquitto, serves the API, stops on SIGTERM
with its rollups written."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from kuat.wire import v1
from tests.controller.test_ingest_mqtt import wait_for
from tests.controller.wire import T0, batch, miner, publisher, random_site
from tests.support.servers import Mosquitto, free_port

pytestmark = pytest.mark.integration
KEY = "cli-operator-key-" + "z" * 20


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_run_ingest_serve_and_stop_on_sigterm(tmp_path: Path, broker: Mosquitto) -> None:
    site, port, db = random_site(), free_port(), tmp_path / "kuat.sqlite"
    cfg = tmp_path / "controller.yaml"
    cfg.write_text(yaml.safe_dump({
        "database_url": f"sqlite:///{db}", "sites": [site], "api": {"port": port},
        "broker": {"port": broker.port, "client_id": f"ctl-{site}"},
        "api_keys": [{"name": "ops", "role": "operator", "key": KEY}],
    }))  # fmt: skip
    log = (tmp_path / "controller.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "kuat.cli", "controller", "run", "--config", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url) or proc.poll() is not None, timeout=30, what="/healthz")
        assert proc.poll() is None, Path(log.name).read_text()
        with publisher(broker.port) as pub:
            pub.send(v1.topic(site, "gw1", "telemetry"), v1.dumps(batch(1, T0, [miner(1), miner(2)], site=site)))
        headers = {"Authorization": f"Bearer {KEY}"}
        wait_for(lambda: httpx.get(f"{url}/api/v1/fleet", headers=headers).json()["total"] == 2, what="fleet")
        assert 'kuat_ingest_samples_total 2' in httpx.get(f"{url}/metrics").text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = Path(log.name).read_text()
    assert "connected to broker" in text and "controller stopped" in text
    with sqlite3.connect(db) as conn:  # the minute still open at SIGTERM was written on the way out
        assert conn.execute("select count(*) from device_minute where site = ?", (site,)).fetchone()[0] == 2


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("broker: {port: nope}\n")
    out = subprocess.run([sys.executable, "-m", "kuat.cli", "controller", "run", "-c", str(cfg)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode != 0 and "broker.port" in out.stderr
