"""The telemetry path: one decoded `TelemetryBatch` into live state, energy, minute rollups, InfluxDB and registry
sightings. Called by the MQTT ingest thread; it must stay cheap per sample (20k samples/s on two cores).

Historical batches (replayed by the agent from its store-and-forward buffer) go to history and energy (on their own
integration chain) but never overwrite live state. A batch seen before (same gateway and seq: a QoS 1 redelivery)
is dropped whole, so nothing is counted twice.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from controller.energy import Integrator, Interval
from controller.history import RollupBook, minute_start
from controller.influx import InfluxWriter, miner_line, pdu_lines
from controller.live import DeviceLive, GatewayLive, LiveState
from controller.metrics import IngestMetrics
from controller.services.owners import OwnerDirectory
from controller.services.sightings import SightingsBridge
from controller.settings import ControllerSettings
from kuat import clock
from kuat.wire import v1

log = logging.getLogger(__name__)

RECENT_SEQS = 4096  # per gateway, for duplicate detection


class TelemetryService:
    def __init__(
        self,
        settings: ControllerSettings,
        live: LiveState,
        book: RollupBook,
        metrics: IngestMetrics,
        owners: OwnerDirectory,
        sightings: SightingsBridge,
        influx: InfluxWriter | None = None,
    ) -> None:
        self.settings = settings
        self.live = live
        self.book = book
        self.metrics = metrics
        self.owners = owners
        self.sightings = sightings
        self.influx = influx
        self.energy = Integrator(settings.energy_max_gap_s)

    def ingest(self, batch: v1.TelemetryBatch, received: float | None = None) -> bool:
        """Take one batch; False when it was a duplicate and was dropped."""
        received = time.time() if received is None else received
        site, gateway = batch.site, batch.gateway
        with self.live.lock:
            gw = self.live.gateway(site, gateway)
            if not self._first_time(gw, batch.seq, batch.ts):
                self.metrics.rejected["duplicate"] += 1
                return False
            self._gateway_seen(gw, batch, received)
        t = batch.ts.timestamp()
        lines = self._miners(batch, t, received) + self._pdus(batch, t, received)
        if self.influx is not None:
            self.influx.write(lines)
            self.metrics.influx_points += len(lines)
        self.sightings.offer(site, gateway, batch.miners, batch.ts)
        self.metrics.count_samples(len(batch.miners) + len(batch.pdus), clock.time() - t, batch.historical)
        return True

    @staticmethod
    def _first_time(gw: GatewayLive, seq: int, ts: datetime) -> bool:
        """False for a redelivery: same seq *and* same ts (an agent whose store was wiped restarts its seq at 1;
        its new batches must not be taken for old ones)."""
        if gw.recent_seqs.get(seq) == ts:
            return False
        gw.recent_seqs.pop(seq, None)  # re-insert at the end: the newest stay in the bounded window
        gw.recent_seqs[seq] = ts
        if len(gw.recent_seqs) > RECENT_SEQS:
            del gw.recent_seqs[next(iter(gw.recent_seqs))]
        return True

    def _gateway_seen(self, gw: GatewayLive, batch: v1.TelemetryBatch, received: float) -> None:
        gw.last_seen = received
        if not gw.online:
            log.info("gateway %s/%s is back (telemetry seq %d)", gw.site, gw.gateway, batch.seq)
            gw.online, gw.reason, gw.changed = True, "", received
        if not batch.historical and (gw.seq is None or batch.seq > gw.seq):
            gw.seq, gw.last_batch_ts = batch.seq, batch.ts
            if batch.lease is not None:
                gw.lease = batch.lease

    def _integrate(self, key: tuple[str, ...], t: float, power_w: float | None) -> tuple[float, float, float]:
        """(kWh, gap seconds, seconds integrated) for the interval this sample closes."""
        interval: Interval | None = self.energy.add(key, t, power_w)
        if interval is None:
            return 0.0, 0.0, 0.0
        if interval.gap:
            self.metrics.energy_gaps += 1
            return 0.0, interval.seconds, 0.0
        return interval.kwh, 0.0, interval.seconds

    def _miners(self, batch: v1.TelemetryBatch, t: float, received: float) -> list[str]:
        site, gateway, historical = batch.site, batch.gateway, batch.historical
        minute, ts_ms, chain = minute_start(t), int(t * 1000), "hist" if historical else "live"
        source_of, owner_of = self.settings.source_of, self.owners.owner
        devices, book = self.live.devices, self.book
        want_lines = self.influx is not None
        lines: list[str] = []
        with book.lock, self.live.lock:
            for m in batch.miners:
                source = source_of(site, m.device_id, m.outlet.pdu if m.outlet else None).value
                owner = owner_of(m.serial)
                kwh, gap, seconds = self._integrate((chain, site, m.device_id), t, m.power_w)
                bucket = book.bucket(site, m.device_id, minute, "miner", gateway, owner, source)
                bucket.add(m.available, m.power_w, m.hashrate_ths, m.temp_c, kwh, gap)
                if seconds and m.hashrate_ths:
                    bucket.hash_ths_s += m.hashrate_ths * seconds  # the money side's hash per owner
                if not historical:
                    self._set_live(devices, site, gateway, m.device_id, "miner", m, batch, received, owner, source)
                if want_lines:
                    text = miner_line(site, gateway, m, owner, source, ts_ms)
                    if text is not None:
                        lines.append(text)
        return lines

    def _pdus(self, batch: v1.TelemetryBatch, t: float, received: float) -> list[str]:
        site, gateway, historical = batch.site, batch.gateway, batch.historical
        minute, ts_ms, chain = minute_start(t), int(t * 1000), "hist" if historical else "live"
        lines: list[str] = []
        with self.book.lock, self.live.lock:
            for p in batch.pdus:
                source = self.settings.source_of(site, p.device_id).value
                kwh, gap, _ = self._integrate((chain, site, p.device_id), t, p.power_w)
                bucket = self.book.bucket(site, p.device_id, minute, "pdu", gateway, "site", source)
                bucket.add(p.available, p.power_w, None, None, kwh, gap)
                if not historical:
                    self._set_live(self.live.devices, site, gateway, p.device_id, "pdu", p, batch, received,
                                   "site", source)  # fmt: skip
                if self.influx is not None:
                    lines.extend(pdu_lines(site, gateway, p, ts_ms))
        return lines

    def _set_live(
        self,
        devices: dict[tuple[str, str], DeviceLive],
        site: str,
        gateway: str,
        device_id: str,
        kind: str,
        sample: v1.MinerSample | v1.PduSample,
        batch: v1.TelemetryBatch,
        received: float,
        owner: str,
        source: str,
    ) -> None:
        key = (site, device_id)
        d = devices.get(key)
        if d is None:
            devices[key] = DeviceLive(site, gateway, device_id, kind, sample, batch.ts, received, owner, source)
            return
        if batch.ts < d.ts:  # an older live batch (reordered delivery) never replaces a newer sample
            return
        d.gateway, d.sample, d.ts, d.received, d.owner, d.source = gateway, sample, batch.ts, received, owner, source
