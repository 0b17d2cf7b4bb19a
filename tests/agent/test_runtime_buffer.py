"""The on-disk buffer: persisted seq, ordered outbox, bounded with counted loss, command memory."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.publisher import mark_historical
from kuat.wire import v1


def test_seq_is_monotonic_and_survives_a_restart(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite")
    assert [buf.next_seq() for _ in range(3)] == [1, 2, 3]
    buf.close()
    again = Buffer(tmp_path / "b.sqlite")
    assert again.next_seq() == 4


def test_outbox_is_ordered_and_rows_leave_only_when_deleted(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite")
    for seq in (1, 2, 3):
        buf.append(seq, f'{{"seq":{seq}}}'.encode())
    assert [r.seq for r in buf.pending(10)] == [1, 2, 3]
    assert [r.seq for r in buf.pending(10, after=1)] == [2, 3]
    assert buf.pending(1)[0].payload == b'{"seq":1}'
    buf.delete(2)
    buf.close()
    again = Buffer(tmp_path / "b.sqlite")
    assert [r.seq for r in again.pending(10)] == [1, 3]


def test_wal_mode(tmp_path: Path) -> None:
    Buffer(tmp_path / "b.sqlite").close()
    mode = sqlite3.connect(tmp_path / "b.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_full_buffer_drops_oldest_counts_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    buf = Buffer(tmp_path / "b.sqlite", max_rows=3)
    with caplog.at_level(logging.ERROR, logger="agent.buffer"):
        dropped = [buf.append(seq, b"x" * 100) for seq in range(1, 6)]
    assert dropped == [0, 0, 0, 1, 1]
    assert [r.seq for r in buf.pending(10)] == [3, 4, 5]
    assert buf.dropped == 2
    assert "dropped the 1 oldest batches (2 lost in total)" in caplog.text
    buf.close()
    assert Buffer(tmp_path / "b.sqlite").dropped == 2  # the loss count is persisted


def test_size_bound(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite", max_rows=1000, max_mb=0.001)  # ~1 KB of compressed payload
    for seq in range(1, 21):
        buf.append(seq, bytes(range(256)) * 2)  # barely compressible, ~500 B each
    rows = buf.pending(100)
    assert 1 <= len(rows) < 20
    assert rows[-1].seq == 20  # the newest is always kept


def test_command_memory_is_bounded_and_persisted(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite", command_memory=100)
    for i in range(150):
        buf.remember_command(f"c{i}", f"ack{i}".encode())
    assert buf.command_ack("c149") == b"ack149"
    assert buf.command_ack("c0") is None  # the oldest were forgotten
    buf.close()
    assert Buffer(tmp_path / "b.sqlite").command_ack("c120") == b"ack120"


def test_mark_historical_sets_only_the_top_level_flag() -> None:
    batch = v1.TelemetryBatch(site="s", gateway="g", seq=7, ts=v1.now())
    marked = v1.TelemetryBatch.model_validate_json(mark_historical(v1.dumps(batch)))
    assert marked.historical is True and marked.seq == 7
    odd = b'{"schema":"kuat.telemetry/1","site":"s","gateway":"g","seq":1,"ts":"2026-01-01T00:00:00Z"}'
    assert v1.TelemetryBatch.model_validate_json(mark_historical(odd)).historical is True
