"""A wall clock stepped by an hour across an agent restart (agent.clock.step): the persisted lease keeps its
monotonic deadline within one boot and never grows beyond its length after a reboot; the command memory forgets
the oldest ids by arrival, not by a wall-clock stamp. The live case is tests/chaos/test_wall_clock_step.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import clock, failsafe
from agent.buffer import Buffer
from agent.failsafe import Lease

HOUR = 3600.0


@pytest.fixture(autouse=True)
def stepped_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.mark.parametrize("step", [HOUR, -HOUR])
def test_a_restart_in_the_same_boot_keeps_the_lease_deadline_whatever_the_wall_clock_did(
        tmp_path: Path, step: float) -> None:
    lease = Lease(Buffer(tmp_path / "b.sqlite", reserve_kb=0))
    lease.renew("batch-1", 30.0)
    clock.step(step)
    again = Lease(Buffer(tmp_path / "b.sqlite", reserve_kb=0))
    left = again.seconds_left()
    assert left is not None and 29.0 < left <= 30.0, left


def test_after_a_reboot_a_clock_stepped_back_cannot_stretch_the_lease(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    lease = Lease(Buffer(tmp_path / "b.sqlite", reserve_kb=0))
    lease.renew("batch-1", 30.0)
    monkeypatch.setattr(failsafe, "boot_id", lambda: "another-boot")
    clock.step(-HOUR)  # by the wall clock, the lease now has an hour and 30 s left
    left = Lease(Buffer(tmp_path / "b.sqlite", reserve_kb=0)).seconds_left()
    assert left is not None and left <= 30.0, left


def test_after_a_reboot_a_clock_stepped_forward_expires_the_lease(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The safe direction: with nothing to go by but the wall clock, the lease counts as run out."""
    Lease(Buffer(tmp_path / "b.sqlite", reserve_kb=0)).renew("batch-1", 30.0)
    monkeypatch.setattr(failsafe, "boot_id", lambda: None)
    clock.step(HOUR)
    left = Lease(Buffer(tmp_path / "b.sqlite", reserve_kb=0)).seconds_left()
    assert left is not None and left < 0


def test_the_command_memory_forgets_by_arrival_not_by_the_wall_clock(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite", command_memory=100, reserve_kb=0)
    for i in range(100):
        buf.remember_command(f"old-{i}", b"{}")
    clock.step(-HOUR)  # the newest ids now carry the oldest stamps
    for i in range(50):
        buf.remember_command(f"new-{i}", b"{}")
    assert all(buf.command_ack(f"new-{i}") is not None for i in range(50)), "a newest id was forgotten"
    assert buf.command_ack("old-0") is None and buf.command_ack("old-99") is not None
