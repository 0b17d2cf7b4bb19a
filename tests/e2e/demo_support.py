"""`kuat demo` as a subprocess for the end-to-end tests: start it with its output in a file, wait (bounded),
make sure it is gone."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
SMALL_SITE = ROOT / "sim" / "sites" / "small.toml"


def launch_demo(out: Path, *args: str) -> subprocess.Popen[bytes]:
    """`kuat demo ARGS` from the repository root, stdout and stderr into `out`; one site (`--sites 1`, the
    single-DPC set-up) unless ARGS say how many."""
    sites = [] if "--sites" in args else ["--sites", "1"]
    with out.open("wb") as sink:
        return subprocess.Popen([sys.executable, "-m", "kuat.cli", "demo", *sites, *args], stdout=sink,
                                stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip


def kill_if_running(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def poll(check: Callable[[], Any], what: str, timeout_s: float, interval_s: float = 0.5,
         log: Path | None = None) -> Any:
    """`check()` until it is truthy (HTTP errors count as not yet); AssertionError after `timeout_s`, with the
    tail of `log` (the demo's own output) so a failure says what the demo was doing."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.HTTPError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval_s)
    tail = ""
    if log is not None and log.exists():
        tail = "\n--- the demo's output (last 60 lines) ---\n" + "\n".join(log.read_text().splitlines()[-60:])
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r}){tail}")
