"""What the field tools share: address checks, one-line errors with exit status 2, JSON on stdout, progress.

A field tool's data goes to stdout (so `kuat agent probe 10.0.3.17 | jq` works) and everything else - logs,
progress, summaries - to stderr. Every failure a technician can cause or meet (a bad address, a port typed into
the address, nothing listening, a wrong community, a device that does not answer) ends in one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import click

from agent.errors import CommandUnsupported, DeviceError, DeviceUnreachable

T = TypeVar("T")
_HOST_PORT = re.compile(r"^\[?(?P<host>[^\[\]]+?)\]?:(?P<port>\d{1,5})$")


class FieldError(click.ClickException):
    """A field tool's failure: one line on stderr, exit status 2."""

    exit_code = 2


def snmp_port_hint(name: str, port: int) -> str:
    return f"give the port as --snmp-port {port} (e.g. --snmp {name} --snmp-port {port})"


def miner_port_hint(name: str, port: int) -> str:
    offset = f" (here --port-offset {port - 4028})" if port > 4028 else ""
    return (f"a miner is reached on its firmware's ports (RPC 4028, web 80); for a simulator on shifted ports "
            f"give --port-offset N for RPC on 4028+N{offset}")


def check_host(host: str, *, port_hint: Callable[[str, int], str]) -> str:
    """`host` as typed, when it is an IP address or a name that resolves; a FieldError saying what is wrong
    otherwise. A port typed as HOST:PORT is refused, saying where it belongs (`port_hint(name, port)`)."""
    text = host.strip()
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    with_port = _HOST_PORT.match(text)
    if with_port is not None and (text.count(":") == 1 or text.startswith("[")):  # 10.0.3.17:161, [fe80::1]:161
        name, port = with_port.group("host"), int(with_port.group("port"))
        raise FieldError(f"{text}: the address takes no port; {port_hint(name, port)}")
    if re.fullmatch(r"[\d.]+", text) or ":" in text:
        raise FieldError(f"{text}: not an IP address")
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", text):
        raise FieldError(f"{text}: not an IP address or a host name")
    try:
        socket.getaddrinfo(text, None)
    except OSError as exc:
        raise FieldError(f"{text}: cannot resolve this host name ({exc.strerror or exc})") from None
    return text


def run_device(coro: Coroutine[Any, Any, T], what: str, limit_s: float | None = None) -> T:
    """Run one device conversation; every way it can fail becomes a one-line FieldError."""

    async def bounded() -> T:
        if limit_s is None:
            return await coro
        async with asyncio.timeout(limit_s):
            return await coro

    try:
        return asyncio.run(bounded())
    except CommandUnsupported as exc:
        raise FieldError(f"rejected: {exc}") from None
    except DeviceUnreachable as exc:
        raise FieldError(str(exc)) from None
    except DeviceError as exc:
        raise FieldError(str(exc)) from None
    except TimeoutError:
        raise FieldError(f"{what}: no answer within {limit_s:g} s") from None
    except ConnectionRefusedError:
        raise FieldError(f"{what}: connection refused (nothing listens there)") from None
    except OSError as exc:
        raise FieldError(f"{what}: {exc.strerror or exc}") from None


def print_json(data: Any) -> None:
    """Data on stdout, as JSON, one document."""
    click.echo(json.dumps(data, indent=2, default=str))


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """A plain column-aligned table on stdout (the first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


class Progress:
    """Progress of `total` steps on stderr: a bar when stderr is a terminal, else one line at the end (logs and
    CI output stay readable)."""

    def __init__(self, total: int, label: str, *, tty: bool | None = None) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty() if tty is None else tty
        self._bar: Any = None

    def __enter__(self) -> Progress:
        if self.tty:
            self._bar = click.progressbar(length=self.total, label=self.label, file=sys.stderr, show_pos=True)
            self._bar.__enter__()
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

