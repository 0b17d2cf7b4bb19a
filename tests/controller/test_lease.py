"""The active/standby lease (controller.lease.keeper) on SQLite and PostgreSQL: one holder at a time, the epoch
grows on each takeover, expiry by the database's clock, and a holder fences itself (local deadline) before anyone
can take over. Waits are bounded; no timed asserts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from controller.db import init_controller_db
from controller.lease.keeper import LeaseKeeper
from serverkit.db import make_engine
from tests.controller.conftest import BOTH_DATABASES, sqlite_or_postgres


@pytest.fixture(params=BOTH_DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    e = make_engine(sqlite_or_postgres(request, tmp_path))
    init_controller_db(e)
    yield e
    e.dispose()


def wait_for(keeper: LeaseKeeper, within_s: float = 15.0) -> int:
    """Step `keeper` until it takes the lease over; its epoch."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        epoch = keeper.step()
        if epoch is not None:
            return epoch
        time.sleep(0.05)
    raise AssertionError(f"{keeper.holder} never took the lease over")


def test_one_holder_the_epoch_grows_and_a_silent_holder_fences_itself(engine: Engine) -> None:
    a = LeaseKeeper(engine, "test", "a", ttl_s=1.0, renew_s=0.2)
    b = LeaseKeeper(engine, "test", "b", ttl_s=1.0, renew_s=0.2)
    assert a.step() == 1 and b.step() is None  # first come; the other is standby
    assert a.step() == 1 and b.step() is None  # renewed: still the same epoch
    view = b.view()
    assert view is not None and view.holder == "a" and view.epoch == 1 and 0 < view.expires_in_s <= 1.0
    # a stops renewing (paused, cut off, killed): b takes over once the database's clock says it expired
    epoch = wait_for(b)
    assert epoch == 2 and a.epoch() is None  # a had fenced itself by its local deadline before b could take over
    assert not a.holds(1) and b.holds(2)
    assert a.step() is None  # a comes back: the row is b's; it stays standby
    b.stop()  # a clean stop hands it over at once
    assert wait_for(a, within_s=2.0) == 3


def test_losing_the_lease_tells_the_listeners_at_once(engine: Engine) -> None:
    a = LeaseKeeper(engine, "told", "a", ttl_s=1.0, renew_s=0.2)
    heard: list[int | None] = []
    a.on_change.append(heard.append)
    assert a.step() == 1 and heard == [1]
    with engine.begin() as conn:  # an operator (or a bug) hands the row to someone else
        conn.exec_driver_sql("UPDATE controller_lease SET holder = 'x', epoch = 7 WHERE name = 'told'")
    assert a.step() is None and heard == [1, None] and a.epoch() is None


def test_settings_refuse_a_renewal_slower_than_the_ttl() -> None:
    from pydantic import ValidationError

    from controller.settings import LeaseSettings

    with pytest.raises(ValidationError, match="renew_s"):
        LeaseSettings(ttl_s=5, renew_s=5)
