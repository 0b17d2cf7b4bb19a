"""Raw telemetry to InfluxDB (v2 write API) through influxdb-client's batching writer.

Points are built as line protocol directly (much cheaper than `Point` objects at 20k samples/s) and handed to
`write_api` in batching mode: a background thread groups them (`batch_size`, `flush_interval`), retries failed
writes with exponential back-off (`retry_interval`, `max_retries`, `max_retry_time`) and reports through callbacks,
which feed the controller's metrics. The schema is documented in docs/influx-schema.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from kuat.wire import v1

from .settings import InfluxSettings

log = logging.getLogger(__name__)

Tags = list[tuple[str, str | None]]
Fields = list[tuple[str, float | int | bool | str | None]]


def _escape_key(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _field_value(v: float | int | bool | str) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else None
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line(measurement: str, tags: Tags, fields: Fields, ts_ms: int) -> str | None:
    """One line of line protocol; None when no field has a value (InfluxDB refuses field-less points)."""
    field_parts = []
    for key, value in fields:
        if value is None:
            continue
        text = _field_value(value)
        if text is not None:
            field_parts.append(f"{_escape_key(key)}={text}")
    if not field_parts:
        return None
    tag_part = "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(tags) if v)
    return f"{_escape_key(measurement)}{tag_part} {','.join(field_parts)} {ts_ms}"


def quota_line(site: str, limit_w: float, target_w: float, power_w: float, binding: str, elapsed_ms: float,
               ts_ms: int) -> str:
    """One quota loop run: the effective limit (and which input binds), the loop's target, the measured power."""
    fields: Fields = [("limit_w", round(limit_w, 1)), ("target_w", round(target_w, 1)), ("power_w", round(power_w, 1)),
                      ("allocation_ms", round(elapsed_ms, 1))]
    out = line("quota", [("site", site), ("binding", binding)], fields, ts_ms)
    assert out is not None  # the fields are always set
    return out


def miner_line(site: str, gateway: str, m: v1.MinerSample, owner: str, source: str, ts_ms: int) -> str | None:
    fans = max(m.fans_rpm) if m.fans_rpm else None
    tags: Tags = [
        ("site", site), ("gateway", gateway), ("device_id", m.device_id), ("model", m.model),
        ("firmware", m.firmware), ("owner", owner), ("power_source", m.power_source.value), ("energy_source", source),
    ]  # fmt: skip
    fields: Fields = [
        ("hashrate_ths", m.hashrate_ths), ("power_w", m.power_w), ("reported_power_w", m.reported_power_w),
        ("power_limit_w", m.power_limit_w), ("nominal_ths", m.nominal_ths), ("temp_c", m.temp_c),
        ("fan_rpm_max", fans), ("uptime_s", m.uptime_s), ("available", m.available), ("state", m.state.value),
        ("errors", len(m.errors)),
    ]  # fmt: skip
    return line("miner", tags, fields, ts_ms)


def pdu_lines(site: str, gateway: str, p: v1.PduSample, ts_ms: int) -> list[str]:
    tags: Tags = [("site", site), ("gateway", gateway), ("device_id", p.device_id), ("family", p.family),
                  ("model", p.model)]  # fmt: skip
    out = [line("pdu", tags, [("power_w", p.power_w), ("energy_kwh", p.energy_kwh), ("available", p.available)], ts_ms)]
    for o in p.outlets:
        otags: Tags = [("site", site), ("gateway", gateway), ("pdu", p.device_id), ("outlet", str(o.index)),
                       ("name", o.name)]  # fmt: skip
        ofields: Fields = [("power_w", o.power_w), ("current_a", o.current_a), ("energy_kwh", o.energy_kwh),
                           ("on", o.state == v1.OutletState.ON), ("state", o.state.value)]  # fmt: skip
        out.append(line("pdu_outlet", otags, ofields, ts_ms))
    return [x for x in out if x is not None]


class InfluxWriter:
    """Owns the client and its batching write API; `write(lines)` never blocks on the network."""

    def __init__(
        self,
        settings: InfluxSettings,
        on_error: Callable[[int], None] | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        from influxdb_client import InfluxDBClient, WriteOptions, WritePrecision  # imported here: optional
        from influxdb_client.client.write_api import WriteType

        self.settings = settings
        self._on_error = on_error
        self._on_retry = on_retry
        self._precision: Any = WritePrecision.MS  # a str constant; the stubs say WritePrecision
        self.client = InfluxDBClient(url=settings.url, token=settings.token, org=settings.org, timeout=10_000)
        options = WriteOptions(
            write_type=WriteType.batching,
            batch_size=settings.batch_size,
            flush_interval=settings.flush_interval_ms,
            retry_interval=settings.retry_interval_ms,
            max_retries=settings.max_retries,
            max_retry_time=settings.max_retry_time_ms,
            exponential_base=2,
        )
        self.write_api = self.client.write_api(
            write_options=options, error_callback=self._failed, retry_callback=self._retrying
        )
        log.info("InfluxDB writer to %s bucket %s (batch %d, flush %d ms)", settings.url, settings.bucket,
                 settings.batch_size, settings.flush_interval_ms)  # fmt: skip

    def _failed(self, conf: Any, data: Any, exception: Exception) -> None:
        lines = data.count(b"\n") + 1 if isinstance(data, bytes) else 1
        log.error("InfluxDB write of %d points failed after retries: %s", lines, exception)
        if self._on_error:
            self._on_error(lines)

    def _retrying(self, conf: Any, data: Any, exception: Exception) -> None:
        log.warning("InfluxDB write failed, retrying: %s", exception)
        if self._on_retry:
            self._on_retry()

    def write(self, lines: list[str]) -> None:
        if lines:
            self.write_api.write(
                bucket=self.settings.bucket, org=self.settings.org, record=lines, write_precision=self._precision
            )

    def close(self) -> None:
        """Flush what is queued and stop the background writer."""
        self.write_api.close()
        self.client.close()
