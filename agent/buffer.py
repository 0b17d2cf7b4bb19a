"""The agent's on-disk store (SQLite, WAL): the telemetry outbox, the persisted sequence number, the ids of recent
commands with their acks (idempotency across restarts) and small state such as the current lease.

Every telemetry batch is written here before it is published and deleted only once the broker acknowledged it
(PUBACK), so a broker outage or an agent restart loses nothing. The outbox is bounded: when full, the oldest
batches are dropped, counted and logged - the only way telemetry is ever lost.

The disk itself full ("database or disk is full", ENOSPC) is handled the same way: the oldest batches are dropped
and counted until the new one fits. In WAL mode SQLite needs room even to delete (the WAL takes the changed pages
before the database file does, and a checkpoint grows the file before the WAL shrinks), so the store keeps a
reserve: a file of `reserve_kb` next to the database, removed when the disk is full to give the checkpoint and
the deletes room, and written again once the dropped batches' pages went back to the file system (incremental
auto-vacuum, WAL truncated). The WAL is kept small (checkpoints every `WAL_PAGES` pages) so the reserve covers it.
Measured on a tmpfs: without the reserve the deletes themselves fail and every later batch is lost.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent import clock

log = logging.getLogger(__name__)

WAL_PAGES = 64  # checkpoint this often (256 KB at 4 KB pages); the reserve must cover a WAL this big, twice
RESERVE_KB = 1024  # the reserve file: room to checkpoint and delete on a full disk (at least a WAL: 256 KB)
ROOM_AFTER = 64 * 1024  # what a full disk's drop frees beyond the reserve it writes again
FULL_ATTEMPTS = 20  # rounds of dropping the oldest before the new batch itself is given up (and counted)

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

    def __init__(self, path: Path | str, max_rows: int = 8640, max_mb: float = 512.0, command_memory: int = 10000,
                 reserve_kb: int = RESERVE_KB):
        self.path = Path(path)
        self.reserve = self.path.with_name(self.path.name + ".reserve")
        self.reserve_bytes = reserve_kb * 1024
        self.max_rows = max_rows
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.command_memory = command_memory
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file: dropped pages can be freed
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        self._db.execute(f"PRAGMA journal_size_limit={WAL_PAGES * 4096}")
        self._db.executescript(_SCHEMA)
        self._vacuum_to_incremental()
        self.dropped = int(self.get_meta("dropped") or 0)
        self.disk_full = 0  # times the disk was found full (this run)
        self.handed_upto = 0  # the newest seq handed to the broker (the publisher's): older rows await only a PUBACK
        self.dropped_unacked = 0  # rows dropped for room after they were handed to the broker (this run; not lost
        # unless the connection breaks before their PUBACK)
        self._write_reserve()

    def _vacuum_to_incremental(self) -> None:
        """A buffer made before incremental auto-vacuum gets it (once: VACUUM rewrites the file, which needs room
        for a copy; without it, dropped pages stay in the file and a full disk cannot be got out of)."""
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] != 0:
            return
        try:
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("VACUUM")
        except sqlite3.Error as exc:
            log.warning("telemetry buffer %s not converted to incremental auto-vacuum (%s): on a full disk its "
                        "dropped batches' room stays in the file", self.path, exc)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        """Store small state (the lease, learned ids); on a full disk room is made first (the lease must be
        saved for setpoints to apply); raises only when even that failed."""
        with self._lock:
            if value is None:
                written, dropped = self._with_room(lambda: self._db.execute("DELETE FROM meta WHERE key = ?", (key,)))
            else:
                written, dropped = self._with_room(lambda: self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)))
        self._count_dropped(dropped)
        if not written:
            raise sqlite3.OperationalError(f"database or disk is full: {key} not stored")

    def last_seq(self) -> int:
        """The last sequence number handed out (0 for a new buffer)."""
        return int(self.get_meta("seq") or 0)

    def next_seq(self) -> int:
        """The next telemetry sequence number; persisted, so it keeps rising across restarts."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
            seq = int(row[0]) + 1 if row else 1
            written, dropped = self._with_room(lambda: self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('seq', ?)", (str(seq),)))
        self._count_dropped(dropped)
        if not written:
            raise sqlite3.OperationalError("database or disk is full: the sequence number cannot be persisted")
        return seq

    # ------------------------------------------------------------ outbox
    def append(self, seq: int, payload: bytes) -> int:
        """Store a batch; returns how many old batches had to be dropped to stay within bounds or to fit on a full
        disk (the new batch itself counts when even an empty outbox has no room for it). Never raises for a full
        disk."""
        blob = zlib.compress(payload, 3)
        with self._lock:
            stored, made_room = self._with_room(lambda: self._db.execute(
                "INSERT INTO outbox (seq, payload, created) VALUES (?, ?, ?)", (seq, blob, clock.time())))
            dropped = made_room + (0 if stored else 1)
            if stored:
                dropped += self._enforce_bounds()
        self._count_dropped(dropped)
        if made_room or not stored:
            log.error("disk full under the telemetry buffer %s: dropped the %d oldest batches%s (%d lost in total)",
                      self.path, made_room, "" if stored else f" and this one (seq {seq})", self.dropped)
        elif dropped:
            log.error(
                "telemetry buffer full (%d rows / %.0f MB): dropped the %d oldest batches (%d lost in total)",
                self.max_rows,
                self.max_bytes / 1024 / 1024,
                dropped,
                self.dropped,
            )
        return dropped

    def _with_room(self, write: Callable[[], object]) -> tuple[bool, int]:
        """Run a write; while the disk is full, drop the oldest batches and retry. (written, oldest dropped)."""
        made_room, empty_tries = 0, 0
        for _ in range(FULL_ATTEMPTS):
            try:
                write()
                return True, made_room
            except (sqlite3.Error, OSError) as exc:
                if not disk_full(exc):
                    raise
            self.disk_full += 1
            try:
                freed = self._make_room()
            except (sqlite3.Error, OSError) as exc:
                if not disk_full(exc):
                    raise
                log.error("disk full under the telemetry buffer and no room even to drop batches: %s", exc)
                return False, made_room
            made_room += freed[0]
            empty_tries += freed[1] == 0
            if empty_tries > 1:  # nothing left to drop, and the reserve is spent: this write cannot be done
                return False, made_room
        return False, made_room

    def _make_room(self) -> tuple[int, int]:
        """Drop the oldest batches worth the reserve and `ROOM_AFTER`, and give their pages back to the file
        system: (dropped that were never handed to the broker, i.e. lost; dropped in all). Those handed to it and
        awaiting their PUBACK are counted in `dropped_unacked`. Removing the reserve first gives the checkpoint
        and the deletes room; the drop goes in steps of half a WAL (delete, vacuum, checkpoint), so no step needs
        more room than the reserve."""
        self.reserve.unlink(missing_ok=True)
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        want, step = self.reserve_bytes + ROOM_AFTER, WAL_PAGES * 4096 // 2
        freed = n = deleted = 0
        while freed < want:
            rows = self._db.execute("SELECT seq, LENGTH(payload) FROM outbox ORDER BY seq LIMIT 1000").fetchall()
            if not rows:
                break
            upto, chunk = rows[0][0], 0
            for seq, length in rows:
                upto, chunk, deleted = seq, chunk + length + 64, deleted + 1
                if seq > self.handed_upto:
                    n += 1
                else:
                    self.dropped_unacked += 1
                if chunk >= step:
                    break
            self._db.execute("DELETE FROM outbox WHERE seq <= ?", (upto,))
            self._db.execute("PRAGMA incremental_vacuum")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            freed += chunk
        self._write_reserve()
        return n, deleted

    def _write_reserve(self) -> None:
        """(Re)make the reserve file (fallocate: the blocks are the file system's promise, not zeros written); on a
        disk without the room there is none, said in the log."""
        if self.reserve_bytes <= 0 or (self.reserve.exists() and self.reserve.stat().st_size >= self.reserve_bytes):
            return
        try:
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)
            finally:
                os.close(fd)
        except OSError as exc:
            self.reserve.unlink(missing_ok=True)
            log.warning("no room for the telemetry buffer's %d KB reserve (%s); a full disk may lose batches",
                        self.reserve_bytes // 1024, exc)

    def _count_dropped(self, dropped: int) -> None:
        if not dropped:
            return
        self.dropped += dropped
        try:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('dropped', ?)", (str(self.dropped),))
        except (sqlite3.Error, OSError) as exc:  # a full disk: the count lives on in memory and in the metrics
            if not disk_full(exc):
                raise

    def _enforce_bounds(self) -> int:
        """Drop the oldest batches beyond `max_rows` / `max_mb`; how many. A full disk stops it where it got (each
        delete commits on its own, so the count is exact; the next append goes on)."""
        rows, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        dropped = 0
        while rows > 1 and (rows > self.max_rows or size > self.max_bytes):
            seq, length = self._db.execute("SELECT seq, LENGTH(payload) FROM outbox ORDER BY seq LIMIT 1").fetchone()
            try:
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            except (sqlite3.Error, OSError) as exc:
                if not disk_full(exc):
                    raise
                break
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
        """Forget an acknowledged batch (a full disk: room is made first; at worst the batch is sent again)."""
        with self._lock:
            _, dropped = self._with_room(lambda: self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)))
        self._count_dropped(dropped)

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
            _, dropped = self._with_room(lambda: self._db.execute(
                "INSERT OR REPLACE INTO commands (id, ack, received) VALUES (?, ?, ?)", (command_id, ack, clock.time())
            ))
            # the newest by arrival (rowid), not by `received`: a wall clock stepped back would make the newest
            # ids look oldest and forget them first, and a repeat of one would be applied again
            try:
                self._db.execute(
                    "DELETE FROM commands WHERE id NOT IN (SELECT id FROM commands ORDER BY rowid DESC LIMIT ?)",
                    (self.command_memory,),
                )
            except (sqlite3.Error, OSError) as exc:  # a full disk: pruned on the next one
                if not disk_full(exc):
                    raise
        self._count_dropped(dropped)


def disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full") or the OS's ENOSPC/EDQUOT."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
