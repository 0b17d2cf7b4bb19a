"""A private VictoriaMetrics (Debian's /usr/bin/victoria-metrics) on 127.0.0.1:<free port>: it accepts the InfluxDB
v2 write API (/api/v2/write), so the controller's influxdb-client writer can be tested against a real server, and
the points read back through /api/v1/export (series are named <measurement>_<field>)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.servers import free_port, require_binary, stop_process


class VictoriaMetrics:
    def __init__(self) -> None:
        self.binary = require_binary("victoria-metrics")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="kuat-vm-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> VictoriaMetrics:
        self.proc = subprocess.Popen(
            [self.binary, f"-httpListenAddr=127.0.0.1:{self.port}", f"-storageDataPath={self.dir}",
             "-retentionPeriod=100y", "-search.disableCache", "-loggerLevel=ERROR"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited with {self.proc.returncode}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                if r.status == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"victoria-metrics did not answer /health within {timeout}s")

    def flush(self) -> None:
        """Make just-written points searchable (VictoriaMetrics buffers them for about a second)."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
            pass

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching the selector, as /api/v1/export's JSON lines (metric, values, timestamps)."""
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as r:
            return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> VictoriaMetrics:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
