"""The agent's on-disk store (SQLite, WAL): the telemetry outbox, the persisted sequence number, the ids of recent
commands with their acks (idempotency across restarts) and small state such as the current lease.

Every telemetry batch is written here before it is published and deleted only once the broker acknowledged it
(PUBACK), so a broker outage or an agent restart loses nothing. The outbox is bounded: when full, the oldest
batches are dropped, counted and logged - the only way telemetry is ever lost.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commands (id TEXT PRIMARY KEY, ack BLOB NOT NULL, received REAL NOT NULL);
"""


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    payload: bytes  # the batch as JSON, as it was produced (live)


class Buffer:
    """Thread-safe: the MQTT network thread deletes acknowledged rows while the poll loop appends."""

    def __init__(self, path: Path | str, max_rows: int = 8640, max_mb: float = 512.0, command_memory: int = 10000):
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.command_memory = command_memory
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.dropped = int(self.get_meta("dropped") or 0)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        with self._lock:
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def last_seq(self) -> int:
        """The last sequence number handed out (0 for a new buffer)."""
        return int(self.get_meta("seq") or 0)

    def next_seq(self) -> int:
        """The next telemetry sequence number; persisted, so it keeps rising across restarts."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
            seq = int(row[0]) + 1 if row else 1
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('seq', ?)", (str(seq),))
        return seq

    # ------------------------------------------------------------ outbox
    def append(self, seq: int, payload: bytes) -> int:
        """Store a batch; returns how many old batches had to be dropped to stay within bounds."""
        blob = zlib.compress(payload, 3)
        with self._lock:
            self._db.execute("INSERT INTO outbox (seq, payload, created) VALUES (?, ?, ?)", (seq, blob, time.time()))
            dropped = self._enforce_bounds()
        if dropped:
            self.dropped += dropped
            self.set_meta("dropped", str(self.dropped))
            log.error(
                "telemetry buffer full (%d rows / %.0f MB): dropped the %d oldest batches (%d lost in total)",
                self.max_rows,
                self.max_bytes / 1024 / 1024,
                dropped,
                self.dropped,
            )
        return dropped

    def _enforce_bounds(self) -> int:
        rows, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        dropped = 0
        while rows > 1 and (rows > self.max_rows or size > self.max_bytes):
            seq, length = self._db.execute("SELECT seq, LENGTH(payload) FROM outbox ORDER BY seq LIMIT 1").fetchone()
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            rows, size, dropped = rows - 1, size - length, dropped + 1
        return int(dropped)

    def pending(self, limit: int, after: int = 0) -> list[OutboxRow]:
        """Oldest unacknowledged batches first (seq > after)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        return [OutboxRow(int(seq), zlib.decompress(blob)) for seq, blob in rows]

    def delete(self, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    # ------------------------------------------------------------ command idempotency
    def command_ack(self, command_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT ack FROM commands WHERE id = ?", (command_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def remember_command(self, command_id: str, ack: bytes) -> None:
        """Keep the ack of a command id (the newest `command_memory` ids are kept)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO commands (id, ack, received) VALUES (?, ?, ?)", (command_id, ack, time.time())
            )
            self._db.execute(
                "DELETE FROM commands WHERE id NOT IN (SELECT id FROM commands ORDER BY received DESC LIMIT ?)",
                (self.command_memory,),
            )
