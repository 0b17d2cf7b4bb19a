"""Child processes of the demo: each part (broker, simulator, controller, agents) runs as its own process with its
log in the work dir; readiness checks have bounded waits; stopping is SIGTERM, then SIGKILL after a bounded wait."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

log = logging.getLogger("demo")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def kuat_argv(*args: str) -> list[str]:
    """`kuat ARGS` with this interpreter (works from a venv without the console script on PATH)."""
    return [sys.executable, "-m", "kuat.cli", *args]


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the demo dies, even by SIGKILL, so no part of a
    killed demo (or of a test that killed one) keeps running. No-op where prctl is unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Child:
    """One part of the demo as a subprocess; its stdout and stderr go to `<log_dir>/<name>.log`."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Child:
        self._log = self.log_path.open("ab")
        # own process group: a Ctrl-C in the terminal reaches the demo only, which then stops the parts in order
        # started from the main thread: PDEATHSIG follows the thread that forked, and the main thread lives as
        # long as the demo does
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)  # fmt: skip
        log.info("started %s (pid %d), log %s", self.name, self.proc.pid, self.log_path)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL (logged)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killed", self.name, timeout_s)
                self.proc.kill()
                self.proc.wait(timeout=5)
            log.info("%s stopped (exit %s)", self.name, self.proc.returncode)
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


STOP = threading.Event()  # set by the demo's SIGINT/SIGTERM handler: waits give up at once


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while the demo was waiting for a part to be ready."""


class ChildDied(RuntimeError):
    def __init__(self, child: Child) -> None:
        super().__init__(f"{child.name} exited with code {child.exit_code()} (log {child.log_path}):\n{child.tail()}")
        self.child = child


def wait_until(check: Callable[[], bool], what: str, timeout_s: float, watch: list[Child],
               interval_s: float = 0.25) -> None:  # fmt: skip
    """Poll `check` until it is true; raise TimeoutError after `timeout_s`, ChildDied if a watched child exits,
    Interrupted on Ctrl-C/SIGTERM."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if STOP.is_set():
            raise Interrupted(what)
        for child in watch:
            if not child.alive():
                raise ChildDied(child)
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(interval_s)
    raise TimeoutError(f"{what}: not ready within {timeout_s:.0f} s")
