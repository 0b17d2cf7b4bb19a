"""Outbox to a registry running as its own process (a real uvicorn server on 127.0.0.1): an outage delays
submissions, and each lands exactly once when the registry is back, even when an answer was lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import func, select

from registry import auth
from registry.app import create_app
from registry.db import init_db
from registry.models import AuditEvent, Hsc, OutboxItem, Role
from registry.outbox import Outbox, OutboxSender
from registry.service import RegistryService
from registry.settings import RegistrySettings
from serverkit.db import make_engine, session_factory
from tests.registry.conftest import StepClock
from tests.registry.helpers import sample
from tests.support.servers import free_port, wait_port


class RemoteRegistry:
    """The standalone registry app under uvicorn in a thread; stop() and start() again on the same port."""

    def __init__(self, db: Path) -> None:
        engine = make_engine(f"sqlite:///{db}")
        init_db(engine)
        self.service = RegistryService(session_factory(engine))
        with self.service.transaction() as session:
            self.token = auth.create_key(session, "controller-ekb", Role.AGENT)
        self.port = free_port()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        app = create_app(RegistrySettings(compliance_interval_s=0), service=self.service)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=15)
            assert not self.thread.is_alive(), "uvicorn did not stop"
        self.server = self.thread = None

    def count(self, model: type) -> int:
        with self.service.reading() as s:
            return int(s.execute(select(func.count()).select_from(model)).scalar_one())


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[RemoteRegistry]:
    registry = RemoteRegistry(tmp_path / "remote.db")
    yield registry
    registry.stop()


def test_outage_delays_and_each_submission_lands_once(tmp_path: Path, remote: RemoteRegistry) -> None:
    local_engine = make_engine(f"sqlite:///{tmp_path / 'controller.db'}")
    init_db(local_engine)
    sessions = session_factory(local_engine)
    clock = StepClock(datetime.now(UTC))
    outbox = Outbox(sessions, clock)
    sender = OutboxSender(sessions, f"http://127.0.0.1:{remote.port}", remote.token, clock=clock, timeout_s=5)
    try:
        keys = [outbox.submit_sightings("ekb", "gw1", [sample(n)], clock()) for n in (1, 2, 3)]
        down = sender.flush()  # the registry is not running
        assert (down.sent, down.waiting) == (0, 3) and down.error is not None and "Connect" in down.error
        assert sender.flush().sent == 0  # backing off: nothing is due yet
        remote.start()
        clock.advance(timedelta(seconds=3))
        up = sender.flush()
        assert (up.sent, up.waiting, up.error) == (3, 0, None)
        assert remote.count(Hsc) == 3
        events = remote.count(AuditEvent)
        # an answer lost on the way back: the controller sends the same submission again
        with sessions() as s, s.begin():
            item = s.execute(select(OutboxItem).where(OutboxItem.idempotency_key == keys[1])).scalar_one()
            item.sent_at, item.response = None, None
        again = sender.flush()
        assert again.sent == 1
        with sessions() as s:
            item = s.execute(select(OutboxItem).where(OutboxItem.idempotency_key == keys[1])).scalar_one()
            assert item.response is not None and item.response["replayed"] is True
        assert remote.count(Hsc) == 3 and remote.count(AuditEvent) == events  # applied exactly once
        remote.stop()
        outbox.submit_sightings("ekb", "gw1", [sample(4)], clock())
        assert sender.flush().waiting == 1
        remote.start()
        clock.advance(timedelta(seconds=3))
        assert sender.flush().sent == 1 and remote.count(Hsc) == 4
    finally:
        sender.close()


def test_refused_submission_is_kept_as_failed(tmp_path: Path, remote: RemoteRegistry) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'controller.db'}")
    init_db(engine)
    sessions = session_factory(engine)
    outbox = Outbox(sessions)
    sender = OutboxSender(sessions, f"http://127.0.0.1:{remote.port}", remote.token, timeout_s=5)
    remote.start()
    try:
        outbox.enqueue("/api/v1/registry/sightings", {"site": "ekb"})  # missing fields: the remote says 422
        report = sender.flush()
        assert (report.sent, report.failed, report.waiting) == (0, 1, 0)
        with sessions() as s:
            item = s.execute(select(OutboxItem)).scalar_one()
        assert item.failed_at is not None and "422" in (item.last_error or "")
    finally:
        sender.close()
