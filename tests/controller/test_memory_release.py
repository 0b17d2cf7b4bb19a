"""serverkit.memory: freed heap handed back after the rollup flush (the soak's resident-memory steps, issue 13)."""

from __future__ import annotations

import sys

import pytest

from controller import runtime
from serverkit import memory


def test_release_is_a_no_op_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_trim", lambda: None)
    assert memory.release_free_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's (Linux)")
def test_release_calls_malloc_trim_on_glibc() -> None:
    assert memory.release_free_memory() is True


def test_every_rollup_flush_releases_memory_even_when_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def release() -> bool:
        calls.append("trim")
        return True

    monkeypatch.setattr(runtime, "release_free_memory", release)

    class Rollups:
        def flush(self) -> int:
            raise RuntimeError("database is locked")

    class Metrics:
        db_errors = 0

    class Services:
        lease = None
        rollups = Rollups()
        metrics = Metrics()

    assert runtime.flush_rollups(Services()) == 0  # type: ignore[arg-type]
    assert calls == ["trim"] and Services.metrics.db_errors == 1
