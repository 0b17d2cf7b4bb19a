"""The live grid signal through real mosquitto brokers into the controller's services: freshness from the
message's own timestamp (a retained old "100 %" is old news), skew refused and counted on /metrics, stale content
fails safe like silence, and two brokers with the primary preferred unless it is stale. Waits are bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.runtime import Services, build_services
from kuat import clock
from kuat.wire import v1
from tests.controller.conftest import make_settings
from tests.controller.wire import Publisher, random_site
from tests.support.servers import Mosquitto

CONTRACT = {"contract_mw": 0.1, "stale_after_s": 3.0, "safe_pct": 20.0}  # 100 kW; stale after 3 s -> 20 kW


def until(check: Callable[[], bool], what: str, within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {within_s:g} s: {what}")


def signal(pct: float, age_s: float = 0.0, reference: str | None = None) -> bytes:
    return v1.dumps(v1.GridSignal(target_pct=pct, ts=clock.now() - timedelta(seconds=age_s), reference=reference))


@pytest.fixture
def brokers() -> Iterator[tuple[Mosquitto, Mosquitto]]:
    with Mosquitto() as primary, Mosquitto() as secondary:
        yield primary, secondary


def controller(tmp_path: Path, site: str, brokers: tuple[Mosquitto, Mosquitto]) -> Services:
    """The controller's services on `site` (limits and a grid contract set), listening to both brokers."""
    quota = {"grid_brokers": [{"port": b.port, "client_id": f"ctl-{site}"} for b in brokers],
             "grid_future_skew_s": 30.0, "grid_past_skew_s": 600.0}  # fmt: skip
    settings = make_settings(tmp_path, sites=[site], broker={"port": brokers[0].port, "client_id": f"ctl-{site}"},
                             quota=quota)  # fmt: skip
    svc = build_services(settings)
    assert svc.quota is not None and svc.grid_signal is not None
    svc.quota.set_site_limits(site, connection_kw=1000, require_schedule=False, actor="test")
    svc.quota.set_grid_contract(site, **CONTRACT, actor="test")
    return svc


def limit(svc: Services, site: str) -> tuple[str, float]:
    assert svc.quota is not None
    status: dict[str, Any] = svc.quota.status(site)
    return status["limit_source"], status["effective_limit_w"]


def counted(svc: Services, broker: str, outcome: str) -> float:
    line = f'kuat_grid_signal_messages_total{{broker="{broker}",outcome="{outcome}"}} '
    found = [row for row in svc.metrics.render().splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def start(svc: Services) -> None:
    assert svc.grid_signal is not None
    svc.grid_signal.start()
    assert all(sub.connected.wait(10) for sub in svc.grid_signal.subscriptions)


def test_a_retained_old_full_target_is_old_news(tmp_path: Path, brokers: tuple[Mosquitto, Mosquitto]) -> None:
    """The grid side's last "100 %" sits retained on the broker; the controller (re)connects: it is delivered at
    once, and it is as old as its timestamp says. It never counts as fresh: the safe level applies."""
    site = random_site()
    topic = v1.grid_signal_topic(site)
    pub = Publisher(brokers[0].port)
    svc = controller(tmp_path, site, brokers)
    try:
        pub.send(topic, signal(100, age_s=120), retain=True)  # older than stale_after_s, younger than the skew
        start(svc)
        until(lambda: counted(svc, "primary", "accepted") == 1, "the retained message recorded")
        assert limit(svc, site) == ("grid_stale", pytest.approx(20_000))
        assert svc.quota is not None and svc.grid_signal is not None
        status = svc.quota.status(site)
        assert status["grid"]["stale"] is True and status["grid"]["target_pct"] == 100
        # a reconnect delivers the same retained message again: a copy of what we have, refused and counted
        svc.grid_signal.stop()
        svc.grid_signal = None
        again = controller_listener(svc, site, brokers)
        until(lambda: counted(svc, "primary", "not_newer") == 1, "the retained copy refused as not newer")
        assert limit(svc, site)[0] == "grid_stale"
        again.stop()
    finally:
        pub.close()
        svc.close()


def controller_listener(svc: Services, site: str, brokers: tuple[Mosquitto, Mosquitto]) -> Any:
    """A second listener on the same service, as after a reconnect (a fresh client gets the retained message)."""
    from controller.quota.grid_signal import GridSignalListener
    from controller.settings import BrokerSettings

    assert svc.quota is not None
    listener = GridSignalListener([BrokerSettings(port=b.port, client_id=f"ctl-{site}-again") for b in brokers],
                                  [site], svc.quota)  # fmt: skip
    listener.start()
    assert listener.wait_connected(10)
    return listener


def test_skewed_and_undated_messages_are_refused_and_counted(tmp_path: Path,
                                                              brokers: tuple[Mosquitto, Mosquitto]) -> None:
    site = random_site()
    topic = v1.grid_signal_topic(site)
    svc = controller(tmp_path, site, brokers)
    pub = Publisher(brokers[0].port)
    try:
        start(svc)
        pub.send(topic, signal(100, age_s=-3600))  # an hour ahead: would stay "fresh" for an hour
        pub.send(topic, signal(100, age_s=3600))  # an hour old
        pub.send(topic, b'{"schema": "kuat.grid/1", "target_pct": 100}')  # no time of its own
        until(lambda: counted(svc, "primary", "no_ts") == 1, "the undated message counted")
        assert counted(svc, "primary", "future") == 1 and counted(svc, "primary", "too_old") == 1
        assert counted(svc, "primary", "accepted") == 0
        assert limit(svc, site) == ("grid_stale", pytest.approx(20_000))  # never received a valid one
        pub.send(topic, signal(60, reference="LIVE"))
        until(lambda: limit(svc, site)[0] == "grid_signal", "a timely message followed")
        assert limit(svc, site)[1] == pytest.approx(60_000)
    finally:
        pub.close()
        svc.close()


def test_stale_content_fails_safe_like_silence(tmp_path: Path, brokers: tuple[Mosquitto, Mosquitto]) -> None:
    """A publisher stuck re-sending the same message (same timestamp) keeps the topic busy but says nothing new:
    the signal turns stale from that timestamp, as if silent."""
    site = random_site()
    topic = v1.grid_signal_topic(site)
    svc = controller(tmp_path, site, brokers)
    pub = Publisher(brokers[0].port)
    try:
        start(svc)
        stuck = signal(60, reference="STUCK")
        sent_at = time.monotonic()
        pub.send(topic, stuck)
        until(lambda: limit(svc, site)[0] == "grid_signal", "the message followed")
        while limit(svc, site)[0] == "grid_signal":
            assert time.monotonic() - sent_at < 15, "stale content never failed safe"
            pub.send(topic, stuck)
            time.sleep(0.25)
        assert time.monotonic() - sent_at >= CONTRACT["stale_after_s"] - 0.5  # from its timestamp, not before
        assert limit(svc, site) == ("grid_stale", pytest.approx(20_000))
        assert counted(svc, "primary", "not_newer") >= 3
    finally:
        pub.close()
        svc.close()


def test_two_brokers_the_primary_preferred_unless_stale(tmp_path: Path,
                                                        brokers: tuple[Mosquitto, Mosquitto]) -> None:
    site = random_site()
    topic = v1.grid_signal_topic(site)
    svc = controller(tmp_path, site, brokers)
    pubs = [Publisher(b.port) for b in brokers]
    targets = {0: 60.0, 1: 40.0}
    live = {0: True, 1: True}
    stop = threading.Event()

    def publish() -> None:  # the grid side: every 0.3 s on both brokers
        while not stop.is_set():
            for i, p in enumerate(pubs):
                if live[i]:
                    p.send(topic, signal(targets[i]))
            stop.wait(0.3)

    grid = threading.Thread(target=publish, daemon=True)
    try:
        start(svc)
        grid.start()
        until(lambda: limit(svc, site) == ("grid_signal", pytest.approx(60_000)), "the primary followed")
        live[0] = False  # the primary falls silent: once its last message is stale, the secondary
        until(lambda: limit(svc, site) == ("grid_signal", pytest.approx(40_000)), "the secondary followed")
        live[0] = True
        until(lambda: limit(svc, site) == ("grid_signal", pytest.approx(60_000)), "the primary followed again")
        live[0] = live[1] = False  # both silent: the safe level
        until(lambda: limit(svc, site) == ("grid_stale", pytest.approx(20_000)), "the safe level")
        assert counted(svc, "secondary", "accepted") > 0 and counted(svc, "primary", "accepted") > 0
    finally:
        stop.set()
        grid.join(5)
        for p in pubs:
            p.close()
        svc.close()


def test_after_a_restart_the_last_message_counts_from_its_own_time(tmp_path: Path,
                                                                   brokers: tuple[Mosquitto, Mosquitto]) -> None:
    site = random_site()
    svc = controller(tmp_path, site, brokers)
    assert svc.quota is not None
    sent = clock.now() - timedelta(seconds=2)
    assert svc.quota.on_grid_signal(site, v1.GridSignal(target_pct=70, ts=sent), broker="primary")
    assert limit(svc, site) == ("grid_signal", pytest.approx(70_000))
    svc.close()
    again = build_services(svc.settings)  # the same database
    try:
        assert again.quota is not None
        status = again.quota.status(site)
        assert status["grid"]["last_received"] == sent  # its own time, not when it was received or reloaded
        until(lambda: limit(again, site)[0] == "grid_stale", "stale, counted from the message's time", 10)
    finally:
        again.close()
