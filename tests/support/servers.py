"""Real servers for tests, started and stopped by the tests themselves, on 127.0.0.1 only, with bounded waits."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def loopback_nets(count: int = 2) -> list[str]:
    """`count` distinct random 127.N networks for simulated miners and PDUs (two picked independently collided
    about once in 230 runs: the PDUs then answered the miners' addresses)."""
    import random

    return [f"127.{n}" for n in random.sample(range(20, 251), count)]


def wait_port(host: str, port: int, timeout: float = 15.0) -> None:
    """Wait (bounded) until a TCP port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout}s")


def require_binary(name: str, package: str | None = None) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    if path is None:
        pytest.skip(f"{name} not installed (Debian package {package or name}; run-tests.sh installs it as root)")
    return path


def stop_process(proc: subprocess.Popen[bytes] | None, grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`: a test server never outlives its test."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


class Mosquitto:
    """A private mosquitto broker on 127.0.0.1:<port>; can be stopped and restarted on the same port."""

    def __init__(self, port: int | None = None, extra_conf: str = "") -> None:
        self.binary = require_binary("mosquitto")
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="kuat-mosq-"))
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"max_queued_messages 100000\n{extra_conf}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def mosquitto() -> Iterator[Mosquitto]:
    with Mosquitto() as m:
        yield m
