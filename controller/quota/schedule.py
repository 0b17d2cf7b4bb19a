"""When the quota loop runs: one thread, every `interval_s` real seconds for every site under control, and at once
for a site whose inputs changed (`kick`). Between runs it lets the loop get ready (`warm`), which gives up as soon
as a run is asked for (`interrupted`). A run that fails is logged by the loop and never stops the thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from controller.settings import QuotaSettings

log = logging.getLogger(__name__)

WARM_EVERY_S = 0.5  # between runs, new telemetry is pre-digested this often (QuotaLoop.warm_all)


class Scheduler:
    def __init__(self, settings: QuotaSettings, sites: Callable[[], list[str]],
                 run: Callable[[str, bool], object], warm: Callable[[], None]) -> None:
        """`sites`: the sites under control now; `run(site, prepared_ok)`: one guarded run; `warm`: between runs."""
        self.settings = settings
        self.sites = sites
        self.run = run
        self.warm = warm
        self.lock = threading.Lock()
        self.kicked: set[str] = set()
        self.fresh_look: set[str] = set()  # kicked for a change the prepared view does not reflect
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_forever, name="kuat-quota-loop", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def interrupted(self) -> bool:
        """A run was asked for, or the loop is stopping: work between runs gives up."""
        return self.wake.is_set() or self._stop.is_set()

    def kick(self, site: str, limits_only: bool = False) -> None:
        """Run `site` now. `limits_only`: only the limit changed, so the run may use a view prepared between runs."""
        with self.lock:
            self.kicked.add(site)
            if not limits_only:
                self.fresh_look.add(site)
        self.wake.set()

    def _run_forever(self) -> None:
        next_all = time.monotonic()
        while not self._stop.is_set():
            woken = self.wake.wait(max(0.0, min(next_all - time.monotonic(), WARM_EVERY_S)))
            if not woken and time.monotonic() < next_all:
                self.warm()
                continue
            self.wake.clear()
            if self._stop.is_set():
                return
            with self.lock:
                kicked, self.kicked = self.kicked, set()
                fresh, self.fresh_look = self.fresh_look, set()
            if time.monotonic() >= next_all:
                next_all = time.monotonic() + self.settings.interval_s
                fresh |= set(self.sites())
                kicked |= fresh
            for site in sorted(kicked):
                self.run(site, site not in fresh)
