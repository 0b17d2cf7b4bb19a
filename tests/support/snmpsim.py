"""snmpsim-command-responder as a test server: serves COPIES of ../shared/fixtures/snmprec recordings.

The community is the recording's file name without `.snmprec`. Starts on 127.0.0.1:<free UDP port>, waits
(bounded) until it answers, stops on exit. Nothing of ../shared is ever copied into the repository.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.servers import free_port

RESPONDER = Path(sys.executable).with_name("snmpsim-command-responder")


def _probe_packet(community: str) -> bytes:
    """A minimal v2c GET sysObjectID.0 datagram (BER), to see that the responder is up."""
    varbind = bytes.fromhex("300c06082b060102010102000500")
    varbinds = b"\x30" + bytes([len(varbind)]) + varbind
    pdu_body = bytes.fromhex("020101") + bytes.fromhex("020100") + bytes.fromhex("020100") + varbinds
    pdu = b"\xa0" + bytes([len(pdu_body)]) + pdu_body
    comm = community.encode()
    msg_body = bytes.fromhex("020101") + b"\x04" + bytes([len(comm)]) + comm + pdu
    return b"\x30" + bytes([len(msg_body)]) + msg_body


class SnmpSim:
    """`with SnmpSim(files) as sim:` -> sim.port; communities = file stems."""

    def __init__(self, recordings: list[Path], *, host: str = "127.0.0.1", v3_args: list[str] | None = None) -> None:
        """`v3_args`: extra responder options for an SNMPv3 user, e.g. ["--v3-user=kuat", "--v3-auth-key=..."]."""
        if not RESPONDER.exists():
            pytest.skip(f"{RESPONDER} missing: install the dev extras (snmpsim, pysmi)")
        self.host = host
        self.port = free_port(host, socket.SOCK_DGRAM)
        self.dir = Path(tempfile.mkdtemp(prefix="kuat-snmpsim-"))
        self.data = self.dir / "data"
        self.data.mkdir()
        for path in recordings:
            shutil.copy(path, self.data / path.name)
        self.communities = [p.stem for p in recordings]
        self.v3_args = v3_args or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_s: float = 30.0) -> SnmpSim:
        env = dict(os.environ, SNMPSIM_ALLOW_ROOT="true")
        self.proc = subprocess.Popen(
            [
                str(RESPONDER),
                f"--data-dir={self.data}",
                f"--cache-dir={self.dir / 'cache'}",
                f"--agent-udpv4-endpoint={self.host}:{self.port}",
                "--log-level=error",
                *self.v3_args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait(wait_s)
        return self

    def _wait(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        packet = _probe_packet(self.communities[0])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                    raise RuntimeError(f"snmpsim exited ({self.proc.returncode}): {err[-2000:]}")
                sock.sendto(packet, (self.host, self.port))
                try:
                    sock.recvfrom(4096)
                    return
                except OSError:
                    continue
        self.stop()
        raise TimeoutError(f"snmpsim did not answer on {self.host}:{self.port} within {wait_s}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SnmpSim:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
