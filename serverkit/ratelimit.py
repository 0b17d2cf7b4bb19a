"""Failed authentication, limited per client: after `limit` failures within `window_s`, the client gets 429 with
Retry-After (every attempt, valid key or not, until the window has passed), and the burst is logged once when it
starts and once, with its totals, when it ends.

Keys carry 256 bits, so the limit is not what keeps a key secret; it keeps a scanner (or a misconfigured client
looping on a revoked key) from filling the log and the database with failed look-ups. Per client = the peer
address the server sees (a proxy in front should be the only peer, and then it is the proxy that gets limited:
docs/security.md). In memory and per process: a restart forgets the counts, which errs on the side of the client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("kuat.auth")


@dataclass
class _Client:
    failures: list[float] = field(default_factory=list)  # monotonic times within the window
    blocked_until: float = 0.0
    burst_started: float | None = None  # set when the limit was first reached
    burst_failures: int = 0
    refused: int = 0


class FailureLimiter:
    """Counts failed authentications per client; says how long a client must still wait (0: it may try)."""

    def __init__(self, limit: int = 10, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000) -> None:  # fmt: skip
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_clients = max_clients
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds `client` must wait before it may authenticate again (0 if it may now); a refusal is counted."""
        now = self.clock()
        with self._lock:
            self._end_bursts(now)
            c = self._clients.get(client)
            if c is None or c.blocked_until <= now:
                return 0.0
            c.refused += 1
            return c.blocked_until - now

    def failed(self, client: str) -> None:
        """One failed authentication from `client`."""
        now = self.clock()
        with self._lock:
            c = self._clients.get(client)
            if c is None:
                if len(self._clients) >= self.max_clients:
                    self._forget_oldest()
                c = self._clients[client] = _Client()
            c.failures = [t for t in c.failures if now - t < self.window_s] + [now]
            if c.burst_started is not None:
                c.burst_failures += 1
            if len(c.failures) >= self.limit:
                c.blocked_until = now + self.window_s
                if c.burst_started is None:
                    c.burst_started, c.burst_failures = now, len(c.failures)
                    log.warning("authentication failures from %s: %d in %.0f s; refusing it (429) for %.0f s",
                                client, len(c.failures), self.window_s, self.window_s)

    def _end_bursts(self, now: float) -> None:
        """Log the summary of every burst whose block has run out, and drop idle clients."""
        for name in list(self._clients):
            c = self._clients[name]
            if c.burst_started is not None and c.blocked_until <= now:
                log.warning("authentication failure burst from %s ended: %d failed, %d refused with 429, over %.0f s",
                            name, c.burst_failures, c.refused, now - c.burst_started)
                c.burst_started, c.burst_failures, c.refused = None, 0, 0
            if c.burst_started is None and all(now - t >= self.window_s for t in c.failures):
                del self._clients[name]

    def _forget_oldest(self) -> None:
        oldest = min(self._clients, key=lambda k: max(self._clients[k].failures, default=0.0))
        del self._clients[oldest]

    def end_bursts(self) -> None:
        """Close the bursts that are over now (called on every check; tests call it directly)."""
        with self._lock:
            self._end_bursts(self.clock())
