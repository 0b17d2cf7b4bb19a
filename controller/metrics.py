"""The controller's own health figures, rendered in the Prometheus text format for /metrics.

Counters are plain ints bumped from the ingest thread (the GIL makes a single `+=` on an attribute safe enough for
monitoring figures); the ingest rate is computed over a sliding window of recent per-second counts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable


class IngestMetrics:
    def __init__(self, rate_window_s: float = 10.0) -> None:
        self.messages: Counter[str] = Counter()  # by kind: telemetry/state/ack
        self.rejected: Counter[str] = Counter()  # by reason: bad_json, schema_version, topic_mismatch, ...
        self.samples_total = 0
        self.historical_samples_total = 0
        self.last_lag_s = 0.0
        self.max_lag_s = 0.0
        self.db_flush_seconds_sum = 0.0
        self.db_flush_count = 0
        self.db_last_flush_s = 0.0
        self.db_rows_written = 0
        self.db_errors = 0
        self.influx_points = 0
        self.influx_errors = 0
        self.influx_retries = 0
        self.energy_gaps = 0
        self.sightings_sent = 0
        self.started = time.time()
        self._window_s = rate_window_s
        self._buckets: deque[tuple[int, int]] = deque()  # (second, samples)
        self._lock = threading.Lock()
        self.quota_runs = 0
        self.quota_seconds_sum = 0.0
        self.quota_last_s = 0.0
        self.quota_sites: dict[str, tuple[float, float, float]] = {}  # site -> (limit W, target W, measured W)
        self.queue_depth: Callable[[], int] = lambda: 0
        self.gauges: dict[str, Callable[[], float]] = {}
        # labelled counters owned by other services: name -> (help, () -> [(labels, value)])
        self.counters: dict[str, tuple[str, Callable[[], list[tuple[str, float]]]]] = {}

    def count_samples(self, n: int, lag_s: float, historical: bool) -> None:
        if historical:
            self.historical_samples_total += n
        else:
            self.samples_total += n
            self.last_lag_s = lag_s
            self.max_lag_s = max(self.max_lag_s, lag_s)
        second = int(time.monotonic())
        with self._lock:
            if self._buckets and self._buckets[-1][0] == second:
                self._buckets[-1] = (second, self._buckets[-1][1] + n)
            else:
                self._buckets.append((second, n))
            self._trim(second)

    def _trim(self, now_s: int) -> None:
        while self._buckets and self._buckets[0][0] <= now_s - self._window_s:
            self._buckets.popleft()

    def rate(self) -> float:
        """Samples per second over the window (live and historical)."""
        now_s = int(time.monotonic())
        with self._lock:
            self._trim(now_s)
            total = sum(n for s, n in self._buckets if s < now_s)  # the current second is still filling
        return total / self._window_s

    def record_quota_run(self, site: str, seconds: float, limit_w: float, target_w: float, power_w: float) -> None:
        self.quota_runs += 1
        self.quota_seconds_sum += seconds
        self.quota_last_s = seconds
        self.quota_sites[site] = (limit_w, target_w, power_w)

    def record_flush(self, seconds: float, rows: int) -> None:
        self.db_flush_seconds_sum += seconds
        self.db_flush_count += 1
        self.db_last_flush_s = seconds
        self.db_rows_written += rows

    def render(self) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, values: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value:g}" for labels, value in values)

        metric(
            "kuat_ingest_messages_total", "counter", "MQTT messages handled, by kind.",
            [(f'{{kind="{k}"}}', v) for k, v in sorted(self.messages.items())] or [('{kind="telemetry"}', 0)],
        )
        metric(
            "kuat_ingest_rejected_total", "counter", "Messages rejected, by reason.",
            [(f'{{reason="{k}"}}', v) for k, v in sorted(self.rejected.items())] or [('{reason="bad_json"}', 0)],
        )
        metric("kuat_ingest_samples_total", "counter", "Live device samples ingested.", [("", self.samples_total)])
        metric(
            "kuat_ingest_historical_samples_total", "counter", "Replayed (historical) device samples ingested.",
            [("", self.historical_samples_total)],
        )
        metric("kuat_ingest_rate", "gauge", "Device samples per second over the last window.", [("", self.rate())])
        metric("kuat_ingest_lag_seconds", "gauge", "Processing time minus batch time, last live batch.",
               [("", self.last_lag_s)])
        metric("kuat_ingest_queue_depth", "gauge", "Messages received but not yet processed.",
               [("", self.queue_depth())])
        metric("kuat_db_flush_seconds", "summary", "Time spent writing rollups to SQL.",
               [("_sum", self.db_flush_seconds_sum), ("_count", self.db_flush_count)])
        metric("kuat_db_last_flush_seconds", "gauge", "Duration of the last rollup write.",
               [("", self.db_last_flush_s)])
        metric("kuat_db_rows_written_total", "counter", "Rollup rows written.", [("", self.db_rows_written)])
        metric("kuat_db_errors_total", "counter", "Failed rollup writes (rows kept for retry).", [("", self.db_errors)])
        metric("kuat_influx_points_total", "counter", "Points handed to the InfluxDB writer.",
               [("", self.influx_points)])
        metric("kuat_influx_errors_total", "counter", "InfluxDB batches given up after retries.",
               [("", self.influx_errors)])
        metric("kuat_influx_retries_total", "counter", "InfluxDB batch retries.", [("", self.influx_retries)])
        metric("kuat_energy_gaps_total", "counter", "Sample intervals too long to integrate (energy not counted).",
               [("", self.energy_gaps)])
        metric("kuat_registry_sightings_total", "counter", "Device sightings handed to the registry.",
               [("", self.sightings_sent)])
        metric("kuat_quota_allocation_seconds", "summary",
               "Quota loop runs: read the fleet, allocate, dispatch (sum and count).",
               [("_sum", self.quota_seconds_sum), ("_count", self.quota_runs)])
        metric("kuat_quota_last_allocation_seconds", "gauge", "Duration of the last quota loop run.",
               [("", self.quota_last_s)])
        for name, index, help_ in (("kuat_quota_limit_watts", 0, "Effective limit in force, by site."),
                                   ("kuat_quota_target_watts", 1, "What the loop asks the fleet for, by site."),
                                   ("kuat_quota_measured_watts", 2, "Measured site power the loop saw, by site.")):
            metric(name, "gauge", help_, [(f'{{site="{site}"}}', v[index]) for site, v in
                                          sorted(self.quota_sites.items())])
        for name, fn in sorted(self.gauges.items()):
            metric(name, "gauge", name.replace("_", " "), [("", fn())])
        for name, (help_, values) in sorted(self.counters.items()):
            metric(name, "counter", help_, values())
        return "\n".join(lines) + "\n"
