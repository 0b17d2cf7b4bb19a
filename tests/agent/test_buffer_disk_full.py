"""The buffer on a full disk: a real SQLite "database or disk is full", not a mock. Two ways to fill it: SQLite's
own `PRAGMA max_page_count` (runs anywhere), and a real 4 MB tmpfs where the test runs as root and may mount one
(ENOSPC from the kernel, the case a ballast-free WAL cannot get out of). Either way: the oldest batches are
dropped and counted, the newest kept in order, and no call raises."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.buffer import Buffer

BATCHES = 1500


def incompressible(seq: int) -> bytes:
    return os.urandom(3000) + str(seq).encode()


def fill(buf: Buffer, n: int = BATCHES) -> list[int]:
    """Append n batches through next_seq, as the agent does; the seqs handed out."""
    seqs = []
    for _ in range(n):
        seq = buf.next_seq()
        buf.append(seq, incompressible(seq))
        seqs.append(seq)
    return seqs


def assert_oldest_dropped_and_counted(buf: Buffer, seqs: list[int]) -> None:
    kept = [r.seq for r in buf.pending(100000)]
    assert buf.disk_full > 0, "the disk never filled: the test proves nothing"
    assert kept, "nothing kept"
    assert kept == seqs[-len(kept):], "not exactly the newest batches kept, in order"
    assert buf.dropped == len(seqs) - len(kept), (buf.dropped, len(seqs), len(kept))


def test_a_full_database_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite", max_rows=100000, reserve_kb=0)
    fill(buf, 5)
    pages = buf._db.execute("PRAGMA page_count").fetchone()[0]
    buf._db.execute(f"PRAGMA max_page_count={pages + 200}")  # about 800 KB: a real SQLITE_FULL beyond it
    seqs = [1, 2, 3, 4, 5, *fill(buf)]
    assert_oldest_dropped_and_counted(buf, seqs)
    buf.delete(seqs[-1])  # acks still work on the full database
    assert buf.pending(100000)[-1].seq == seqs[-2]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs (root only); skips where it cannot be mounted."""
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        pytest.skip("a real full disk needs root to mount a tmpfs (the max_page_count case covers the rest)")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run([mount, "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True,
                          timeout=10)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], timeout=10, check=False)


def test_a_full_disk_drops_the_oldest_and_counts_them(small_disk: Path) -> None:
    buf = Buffer(small_disk / "b.sqlite", max_rows=100000, reserve_kb=512)
    seqs = fill(buf)
    assert_oldest_dropped_and_counted(buf, seqs)
    assert (small_disk / "b.sqlite.reserve").stat().st_size == 512 * 1024  # room kept for the next time
    buf.close()
    again = Buffer(small_disk / "b.sqlite", max_rows=100000, reserve_kb=512)  # a restart on the full disk
    more = fill(again, 400)
    assert more[0] == seqs[-1] + 1
    assert_oldest_dropped_and_counted(again, [*seqs, *more])


def test_without_a_reserve_a_full_disk_loses_batches_but_never_raises(small_disk: Path) -> None:
    """The measured reason for the reserve: in WAL mode the deletes themselves need room."""
    buf = Buffer(small_disk / "b.sqlite", max_rows=100000, reserve_kb=0)
    seqs = []
    for _ in range(BATCHES):
        try:
            seq = buf.next_seq()
        except Exception:  # the seq cannot be persisted: the agent logs the cycle as lost
            continue
        buf.append(seq, incompressible(seq))
        seqs.append(seq)
    kept = [r.seq for r in buf.pending(100000)]
    assert buf.disk_full > 0
    assert len(seqs) < BATCHES, "with no reserve the full disk was expected to lose cycles (measured: it does)"
    assert kept == seqs[-len(kept):]
    print(f"\nno reserve: {BATCHES - len(seqs)} of {BATCHES} cycles could not be buffered; {len(kept)} kept, "
          f"{buf.dropped} dropped")


def test_a_buffer_made_before_incremental_vacuum_is_converted_once(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "b.sqlite")
    old.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL, created REAL NOT NULL)")
    old.execute("INSERT INTO outbox VALUES (7, ?, 0)", (zlib.compress(b"kept"),))
    old.commit()
    old.close()
    buf = Buffer(tmp_path / "b.sqlite", reserve_kb=0)
    assert buf._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
    assert [(r.seq, r.payload) for r in buf.pending(10)] == [(7, b"kept")]


def test_on_a_full_database_the_lease_and_command_acks_are_still_stored(tmp_path: Path) -> None:
    """Setpoints renew the lease (saved in the buffer) and their acks are remembered: both make room first."""
    from agent.failsafe import Lease

    buf = Buffer(tmp_path / "b.sqlite", max_rows=100000, reserve_kb=0)
    fill(buf, 5)
    pages = buf._db.execute("PRAGMA page_count").fetchone()[0]
    buf._db.execute(f"PRAGMA max_page_count={pages + 50}")
    seqs = [1, 2, 3, 4, 5, *fill(buf, 300)]
    assert buf.disk_full > 0
    full_before = buf.disk_full
    lease = Lease(buf)
    for i in range(60):  # each save rewrites the lease; the acks grow the command table
        lease.renew(f"batch-{i}", 30.0)
        buf.remember_command(f"cmd-{i}", os.urandom(1500))
    assert buf.command_ack("cmd-59") is not None and buf.get_meta("lease") is not None
    assert buf.disk_full > full_before, "the acks never met the full database: the test proves nothing"
    assert_oldest_dropped_and_counted(buf, seqs)
