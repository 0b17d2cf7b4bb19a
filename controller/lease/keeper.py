"""One active controller per database: the epoch-fenced lease (never a bare advisory lock: connection pools keep
or recycle sessions, PgBouncer in transaction mode does not support them, a cancelled client can leak one;
../shared/domain/QUOTA.md, Proto Fleet's active-passive RFC).

`LeaseKeeper` renews its lease every `renew_s` with one conditional UPDATE (still mine, same epoch, not expired by
the database's clock) or, while it does not hold it, tries to take it over with another (expired: holder = me,
epoch + 1). Expiry is always the database's clock plus `ttl_s`.

Fencing: `epoch()` is the epoch while the lease is held, else None, and it turns None on its own once the local
deadline passes: the start of the last successful renewal plus `ttl_s`, which is never later than the expiry the
database wrote (it wrote its own now, taken after we started, plus the same ttl). So a controller cut off from
the database stops dispatching before a standby can take over, whether or not the renewal thread ever runs again.
Every setpoint batch carries the epoch, and agents ignore a batch older than the newest epoch they have seen: a
paused process that wakes up after a takeover cannot steer the site.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)

DB_NOW = {
    "postgresql": "extract(epoch from clock_timestamp())",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}


def new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class LeaseView:
    """The row as the database has it now."""

    holder: str
    epoch: int
    expires_in_s: float  # by the database's clock (negative: expired)


class LeaseKeeper:
    def __init__(self, engine: Engine, name: str = "controller", holder: str | None = None, ttl_s: float = 10.0,
                 renew_s: float = 2.0) -> None:
        if not 0 < renew_s < ttl_s:
            raise ValueError(f"renew_s ({renew_s}) must be positive and below ttl_s ({ttl_s})")
        self.engine = engine
        self.name = name
        self.holder = holder or new_holder_id()
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self._now = DB_NOW.get(engine.dialect.name)
        if self._now is None:
            raise ValueError(f"no database clock for dialect {engine.dialect.name!r}")
        self._epoch: int | None = None
        self._deadline = -1.0  # time.monotonic() until which the lease is ours
        self._lock = threading.RLock()  # listeners told under it may ask for the epoch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_change: list[Callable[[int | None], None]] = []  # told the new epoch, or None when lost
        self.acquired_at: float | None = None  # time.monotonic() of the last takeover by this process

    # ------------------------------------------------------------ fencing

    def epoch(self) -> int | None:
        """The epoch while this process holds the lease (checked against the local deadline), else None."""
        with self._lock:
            if self._epoch is not None and time.monotonic() >= self._deadline:
                self._lose("its local deadline passed without a renewal")
            return self._epoch

    def holding(self) -> bool:
        return self.epoch() is not None

    def holds(self, epoch: int) -> bool:
        """Still the holder, under the same epoch (a dispatch checks this right before it publishes)."""
        return self.epoch() == epoch

    # ------------------------------------------------------------ one attempt

    def step(self) -> int | None:
        """Renew (when held) or try to take over; returns the epoch held afterwards. A database error leaves the
        local deadline to decide (it is never extended without the database's word)."""
        started = time.monotonic()
        try:
            with self.engine.begin() as conn:
                conn.execute(text("INSERT INTO controller_lease (name, holder, epoch, expires_at_s, renewed_at_s, "
                                  "acquired_at_s) VALUES (:n, '', 0, 0, 0, 0) ON CONFLICT DO NOTHING"),
                             {"n": self.name})  # fmt: skip
                mine = self._epoch
                taken = self._renew(conn, mine) if mine is not None else self._take_over(conn)
        except Exception as exc:
            log.warning("lease %s: the database did not answer (%s); %s", self.name, exc,
                        "held until its local deadline" if self._epoch is not None else "still standby")
            return self.epoch()
        with self._lock:
            if taken is None:
                if self._epoch is not None:
                    self._lose("the database says another controller holds it, or it expired")
                return None
            if self._epoch is None:
                self.acquired_at = time.monotonic()
                log.warning("lease %s: this controller (%s) is now active, epoch %d", self.name, self.holder, taken)
                self._epoch = taken
                self._deadline = started + self.ttl_s
                self._tell(taken)
            self._deadline = started + self.ttl_s
            return taken

    def _renew(self, conn: Connection, mine: int) -> int | None:
        done = conn.execute(text(
            f"UPDATE controller_lease SET expires_at_s = {self._now} + :ttl, renewed_at_s = {self._now} "
            f"WHERE name = :n AND holder = :h AND epoch = :e AND expires_at_s > {self._now}"),
            {"n": self.name, "h": self.holder, "e": mine, "ttl": self.ttl_s}).rowcount
        return mine if done == 1 else None

    def _take_over(self, conn: Connection) -> int | None:
        done = conn.execute(text(
            f"UPDATE controller_lease SET holder = :h, epoch = epoch + 1, expires_at_s = {self._now} + :ttl, "
            f"renewed_at_s = {self._now}, acquired_at_s = {self._now} WHERE name = :n AND expires_at_s <= {self._now}"),
            {"n": self.name, "h": self.holder, "ttl": self.ttl_s}).rowcount
        if done != 1:
            return None
        row = conn.execute(text("SELECT epoch FROM controller_lease WHERE name = :n AND holder = :h"),
                           {"n": self.name, "h": self.holder}).first()
        return None if row is None else int(row[0])

    def _lose(self, why: str) -> None:
        """Called with the lock held."""
        log.error("lease %s: lost (%s): dispatch stops now; standby", self.name, why)
        self._epoch = None
        self._deadline = -1.0
        self._tell(None)

    def _tell(self, epoch: int | None) -> None:
        for fn in list(self.on_change):
            try:
                fn(epoch)
            except Exception:
                log.exception("lease %s: a listener failed", self.name)

    def view(self) -> LeaseView | None:
        with self.engine.connect() as conn:
            row = conn.execute(text(f"SELECT holder, epoch, expires_at_s - {self._now} FROM controller_lease "
                                    f"WHERE name = :n"), {"n": self.name}).first()
        return None if row is None else LeaseView(str(row[0]), int(row[1]), float(row[2]))

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._stop.clear()
        self.step()
        self._thread = threading.Thread(target=self._run, name="kuat-lease", daemon=True)
        self._thread.start()
        log.info("lease %s: %s as %s (ttl %g s, renewed every %g s)", self.name,
                 "active" if self.holding() else "standby", self.holder, self.ttl_s, self.renew_s)

    def _run(self) -> None:
        while not self._stop.wait(self.renew_s):
            self.step()

    def stop(self, release: bool = True) -> None:
        """Stop renewing; `release`: hand the lease over at once (a clean shutdown) instead of letting it expire."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.renew_s + 5)
            self._thread = None
        with self._lock:
            mine = self._epoch
            if mine is not None:
                self._lose("stopped")
        if release and mine is not None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(text(f"UPDATE controller_lease SET expires_at_s = {self._now} WHERE name = :n AND "
                                      f"holder = :h AND epoch = :e"), {"n": self.name, "h": self.holder, "e": mine})
                log.info("lease %s: released (epoch %d)", self.name, mine)
            except Exception as exc:
                log.warning("lease %s: not released (%s); it expires in %g s", self.name, exc, self.ttl_s)
