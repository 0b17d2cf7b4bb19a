"""History in SQL: per-device minute rollups and per-site, per-energy-source minute totals.

Rollups accumulate in memory (`RollupBook`, one bucket per device per minute, updated per sample from the ingest
thread) and are written once a minute (closed minutes) or on shutdown (everything). Rows hold sums and counts, so a
late (historical) sample for a minute already written merges into the row by addition (upsert). Site totals are then
recomputed from the device rows of the minutes touched, so they always agree with them.
Raw samples never go to SQL: they go to InfluxDB when one is configured.

Days are Astana calendar days (money.timebase: UTC+5, UTC+6 before March 2024): the energy day ledger and every
query "by day" count from Astana midnight, as the mining fee and the monthly reports do. `owner_hour` keeps, per
site, UTC hour, owner and energy source, the miners' energy and hash (TH/s x seconds) for as long as site totals:
the money side's energy per licensee and source, its hash rate per owner, and its hourly comparison with the
commercial meter all read it (an Astana day is 24 whole UTC hours).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from kuat import clock
from money.timebase import astana_date

log = logging.getLogger(__name__)

metadata = MetaData()

device_minute = Table(
    "device_minute",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("device_id", String(128), primary_key=True),
    Column("minute", DateTime(timezone=True), primary_key=True, index=True),  # UTC start of the minute
    Column("kind", String(8), nullable=False),  # miner / pdu
    Column("gateway", String(64), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("source", String(32), nullable=False),  # controller.settings.EnergySource
    Column("samples", Integer, nullable=False),
    Column("available_samples", Integer, nullable=False),
    Column("power_w_sum", Float, nullable=False),
    Column("power_samples", Integer, nullable=False),
    Column("power_w_max", Float),
    Column("hashrate_ths_sum", Float, nullable=False),
    Column("hashrate_samples", Integer, nullable=False),
    Column("temp_c_max", Float),
    Column("energy_kwh", Float, nullable=False),
    Column("gap_s", Float, nullable=False),  # seconds between samples too long to integrate
)

site_minute = Table(
    "site_minute",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("minute", DateTime(timezone=True), primary_key=True, index=True),
    Column("source", String(32), primary_key=True),
    Column("miners", Integer, nullable=False),
    Column("miners_available", Integer, nullable=False),
    Column("power_w", Float, nullable=False),  # sum of the miners' average power in the minute
    Column("hashrate_ths", Float, nullable=False),
    Column("energy_kwh", Float, nullable=False),
)

energy_day = Table(
    "energy_day",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("device_id", String(128), primary_key=True),
    Column("day", Date, primary_key=True, index=True),  # Astana calendar day (UTC days before revision 0002)
    Column("owner", String(128), primary_key=True),  # a device can change owner (or source) within a day
    Column("source", String(32), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("energy_kwh", Float, nullable=False),
    Column("gap_s", Float, nullable=False),
)

owner_hour = Table(
    "owner_hour",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("hour", DateTime(timezone=True), primary_key=True, index=True),  # UTC start of the hour
    Column("owner", String(128), primary_key=True),
    Column("source", String(32), primary_key=True),
    Column("energy_kwh", Float, nullable=False),
    Column("gap_s", Float, nullable=False),
    Column("hash_ths_s", Float, nullable=False),  # TH/s x seconds integrated, like energy (Bucket.hash_ths_s)
    Column("device_minutes", Integer, nullable=False),
)

ADDITIVE = (
    "samples", "available_samples", "power_w_sum", "power_samples", "hashrate_ths_sum", "hashrate_samples",
    "energy_kwh", "gap_s",
)  # fmt: skip


def create_tables(engine: Engine) -> None:
    """create_all of the history tables that are missing: tests use it to put back a table they dropped to make
    writes fail. A real database gets its schema from the migrations (controller.db.init_controller_db)."""
    metadata.create_all(engine)


def minute_start(epoch_s: float) -> int:
    return int(epoch_s // 60) * 60


def as_datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


@dataclass(slots=True)
class Bucket:
    """One device's figures for one minute; sums and counts so buckets and rows merge by addition."""

    kind: str
    gateway: str
    owner: str
    source: str
    samples: int = 0
    available_samples: int = 0
    power_w_sum: float = 0.0
    power_samples: int = 0
    power_w_max: float | None = None
    hashrate_ths_sum: float = 0.0
    hashrate_samples: int = 0
    temp_c_max: float | None = None
    energy_kwh: float = 0.0
    gap_s: float = 0.0
    hash_ths_s: float = 0.0  # TH/s x seconds integrated (the closing sample's hash rate over the interval)

    def add(
        self,
        available: bool,
        power_w: float | None,
        hashrate_ths: float | None,
        temp_c: float | None,
        kwh: float,
        gap_s: float,
    ) -> None:
        self.samples += 1
        self.available_samples += available
        if power_w is not None:
            self.power_w_sum += power_w
            self.power_samples += 1
            self.power_w_max = power_w if self.power_w_max is None else max(self.power_w_max, power_w)
        if hashrate_ths is not None:
            self.hashrate_ths_sum += hashrate_ths
            self.hashrate_samples += 1
        if temp_c is not None:
            self.temp_c_max = temp_c if self.temp_c_max is None else max(self.temp_c_max, temp_c)
        self.energy_kwh += kwh
        self.gap_s += gap_s


BucketKey = tuple[str, str, int]  # site, device id, minute (epoch s)


@dataclass
class RollupBook:
    """The in-memory minute buckets. `add` is called from the ingest thread, `take` from the flusher."""

    buckets: dict[BucketKey, Bucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bucket(
        self, site: str, device_id: str, minute: int, kind: str, gateway: str, owner: str, source: str
    ) -> Bucket:
        """The bucket to add to (caller holds `lock`)."""
        key = (site, device_id, minute)
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = Bucket(kind, gateway, owner, source)
        return b

    def take(self, before_minute: int | None) -> dict[BucketKey, Bucket]:
        """Remove and return the buckets of minutes before `before_minute` (all of them when None)."""
        with self.lock:
            if before_minute is None:
                taken, self.buckets = self.buckets, {}
                return taken
            taken = {k: b for k, b in self.buckets.items() if k[2] < before_minute}
            for k in taken:
                del self.buckets[k]
            return taken

    def put_back(self, taken: dict[BucketKey, Bucket]) -> None:
        """Return buckets whose write failed, merging with anything added since."""
        with self.lock:
            for key, old in taken.items():
                new = self.buckets.get(key)
                if new is None:
                    self.buckets[key] = old
                    continue
                for name in ADDITIVE:
                    setattr(new, name, getattr(new, name) + getattr(old, name))
                new.hash_ths_s += old.hash_ths_s
                new.power_w_max = _max(new.power_w_max, old.power_w_max)
                new.temp_c_max = _max(new.temp_c_max, old.temp_c_max)

    def snapshot(self) -> list[tuple[BucketKey, Bucket]]:
        with self.lock:
            return list(self.buckets.items())


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _row(key: BucketKey, b: Bucket) -> dict[str, Any]:
    site, device_id, minute = key
    return {
        "site": site, "device_id": device_id, "minute": as_datetime(minute), "kind": b.kind, "gateway": b.gateway,
        "owner": b.owner, "source": b.source, "samples": b.samples, "available_samples": b.available_samples,
        "power_w_sum": b.power_w_sum, "power_samples": b.power_samples, "power_w_max": b.power_w_max,
        "hashrate_ths_sum": b.hashrate_ths_sum, "hashrate_samples": b.hashrate_samples, "temp_c_max": b.temp_c_max,
        "energy_kwh": b.energy_kwh, "gap_s": b.gap_s,
    }  # fmt: skip


def _upsert_device_rows(conn: Any, rows: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        stmt: Any = sqlite.insert(device_minute)
    elif dialect == "postgresql":
        stmt = postgresql.insert(device_minute)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"rollups need SQLite or PostgreSQL, not {dialect}")
    ex = stmt.excluded
    t = device_minute.c
    updates: dict[str, Any] = {name: t[name] + ex[name] for name in ADDITIVE}
    updates["power_w_max"] = func.coalesce(func.max(t.power_w_max, ex.power_w_max), t.power_w_max, ex.power_w_max)
    if dialect == "postgresql":
        updates["power_w_max"] = func.greatest(t.power_w_max, ex.power_w_max)
        updates["temp_c_max"] = func.greatest(t.temp_c_max, ex.temp_c_max)
    else:
        updates["temp_c_max"] = func.coalesce(func.max(t.temp_c_max, ex.temp_c_max), t.temp_c_max, ex.temp_c_max)
    stmt = stmt.on_conflict_do_update(index_elements=["site", "device_id", "minute"], set_=updates)
    _execute_upsert(conn, stmt, rows)


def _execute_upsert(conn: Any, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """One chunk of upsert rows (unique keys). On PostgreSQL with RETURNING: SQLAlchemy batches an executemany of
    INSERT ... ON CONFLICT DO UPDATE into multi-row statements ("insertmanyvalues") only when it returns rows;
    without, psycopg2 sent it row by row, one round trip each, and at 100,000 machines a flush outlasted the
    interval between flushes, so the rollup book grew without end (bench/soak.py --postgres). A multi-row
    `.values(rows)` was no better: compiling 34,000 bound parameters a chunk held the flush just as long.
    SQLite keeps plain executemany (in process, no round trips)."""
    if conn.dialect.name == "postgresql":
        key = next(iter(stmt.table.primary_key.columns))
        conn.execute(stmt.returning(key), rows).close()
    else:
        conn.execute(stmt, rows)


def _upsert_energy_days(conn: Any, taken: dict[BucketKey, Bucket]) -> None:
    """The day ledger: per device, owner and source and Astana day, kept as long as site totals (minute rows are
    not)."""
    days: dict[tuple[str, str, date, str, str], list[Any]] = {}
    for (site, device_id, minute), b in taken.items():
        key = (site, device_id, astana_date(as_datetime(minute)), b.owner, b.source)
        acc = days.setdefault(key, [b.kind, 0.0, 0.0])
        acc[1] += b.energy_kwh
        acc[2] += b.gap_s
    stmt: Any = sqlite.insert(energy_day) if conn.dialect.name == "sqlite" else postgresql.insert(energy_day)
    t, ex = energy_day.c, stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["site", "device_id", "day", "owner", "source"],
        set_={"energy_kwh": t.energy_kwh + ex.energy_kwh, "gap_s": t.gap_s + ex.gap_s},
    )
    items = list(days.items())
    for i in range(0, len(items), CHUNK):  # row dicts a chunk at a time, as the device rows (_row_chunks)
        rows = [{"site": k[0], "device_id": k[1], "day": k[2], "owner": k[3], "source": k[4], "kind": v[0],
                 "energy_kwh": v[1], "gap_s": v[2]} for k, v in items[i : i + CHUNK]]  # fmt: skip
        _execute_upsert(conn, stmt, rows)


def _upsert_owner_hours(conn: Any, taken: dict[BucketKey, Bucket]) -> None:
    """Miners' energy and hash per site, UTC hour, owner and source (additive, like the day ledger)."""
    hours: dict[tuple[str, int, str, str], list[float]] = {}
    for (site, _device, minute), b in taken.items():
        if b.kind != "miner":
            continue
        acc = hours.setdefault((site, minute - minute % 3600, b.owner, b.source), [0.0, 0.0, 0.0, 0])
        acc[0] += b.energy_kwh
        acc[1] += b.gap_s
        acc[2] += b.hash_ths_s
        acc[3] += 1
    if not hours:
        return
    rows = [{"site": k[0], "hour": as_datetime(k[1]), "owner": k[2], "source": k[3], "energy_kwh": v[0],
             "gap_s": v[1], "hash_ths_s": v[2], "device_minutes": int(v[3])} for k, v in hours.items()]
    stmt: Any = sqlite.insert(owner_hour) if conn.dialect.name == "sqlite" else postgresql.insert(owner_hour)
    t, ex = owner_hour.c, stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["site", "hour", "owner", "source"],
        set_={name: t[name] + ex[name] for name in ("energy_kwh", "gap_s", "hash_ths_s", "device_minutes")},
    )
    for i in range(0, len(rows), CHUNK):
        _execute_upsert(conn, stmt, rows[i : i + CHUNK])


def _recompute_site_minutes(conn: Any, touched: set[tuple[str, int]]) -> None:
    """Site totals for the (site, minute) pairs touched, from their miners' rows."""
    if not touched:
        return
    d = device_minute.c
    pairs = [and_(d.site == s, d.minute == as_datetime(m)) for s, m in touched]
    where = or_(*pairs)
    s = site_minute.c
    conn.execute(delete(site_minute).where(or_(*[and_(s.site == st, s.minute == as_datetime(m)) for st, m in touched])))
    avg_power = func.coalesce(d.power_w_sum / func.nullif(d.power_samples, 0), 0.0)
    avg_hash = func.coalesce(d.hashrate_ths_sum / func.nullif(d.hashrate_samples, 0), 0.0)
    available = func.sum(case((d.available_samples > 0, 1), else_=0))
    query = (
        select(
            d.site, d.minute, d.source, func.count(), available, func.sum(avg_power),
            func.sum(avg_hash), func.sum(d.energy_kwh),
        )
        .where(d.kind == "miner", where)
        .group_by(d.site, d.minute, d.source)
    )
    conn.execute(
        insert(site_minute).from_select(
            ["site", "minute", "source", "miners", "miners_available", "power_w", "hashrate_ths", "energy_kwh"], query
        )
    )


CHUNK = 2000  # rows per statement; keeps SQLite's variable limit and PostgreSQL's packet size comfortable


def write_buckets(engine: Engine, taken: dict[BucketKey, Bucket]) -> int:
    """Upsert buckets as device rows and refresh the site totals they touch, in one transaction."""
    if not taken:
        return 0
    touched = {(k[0], k[2]) for k, b in taken.items() if b.kind == "miner"}
    with engine.begin() as conn:
        for chunk in _row_chunks(taken):
            _upsert_device_rows(conn, chunk)
        _upsert_energy_days(conn, taken)
        _upsert_owner_hours(conn, taken)
        touched_list = sorted(touched)
        for i in range(0, len(touched_list), 200):
            _recompute_site_minutes(conn, set(touched_list[i : i + 200]))
    return len(taken)


def _row_chunks(taken: dict[BucketKey, Bucket], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    """The buckets' rows, `size` at a time: a flush holds one chunk of row dicts, not one per bucket taken (with
    100,000 machines and a backlog of minutes that was hundreds of MB of short-lived dicts every flush, which the
    allocator kept as resident memory after they were freed: bench/soak.py, docs/decisions.md)."""
    chunk: list[dict[str, Any]] = []
    for key, b in taken.items():
        chunk.append(_row(key, b))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class RollupWriter:
    """Moves closed minutes (or everything, on shutdown) from the book to SQL; keeps them when the write fails."""

    def __init__(self, engine: Engine, book: RollupBook, on_flush: Any = None) -> None:
        self.engine = engine
        self.book = book
        self.on_flush = on_flush  # callable(seconds, rows) for metrics
        self._write_lock = threading.Lock()

    def flush(self, everything: bool = False, now: float | None = None) -> int:
        with self._write_lock:
            cutoff = None if everything else minute_start(clock.time() if now is None else now)  # batch-ts time
            taken = self.book.take(cutoff)
            if not taken:
                return 0
            started = time.perf_counter()
            try:
                rows = write_buckets(self.engine, taken)
            except Exception:
                self.book.put_back(taken)
                log.exception("rollup write of %d buckets failed; kept in memory for the next flush", len(taken))
                raise
            seconds = time.perf_counter() - started
            if self.on_flush:
                self.on_flush(seconds, rows)
            log.info("wrote %d minute rollups in %.3f s", rows, seconds)
            return rows

    def prune(self, older_than: datetime, device_minutes_older_than: datetime | None = None) -> int:
        """Drop what is past retention: site minutes and the energy day ledger before `older_than`, device minutes
        before `device_minutes_older_than` (default: the same); returns the device-minute rows dropped."""
        device_cutoff = device_minutes_older_than or older_than
        with self.engine.begin() as conn:
            n = conn.execute(delete(device_minute).where(device_minute.c.minute < device_cutoff)).rowcount
            conn.execute(delete(site_minute).where(site_minute.c.minute < older_than))
            conn.execute(delete(owner_hour).where(owner_hour.c.hour < older_than))
            conn.execute(delete(energy_day).where(energy_day.c.day < older_than.date()))
        if n:
            log.info("retention: dropped %d device-minute rows before %s", n, device_cutoff.isoformat())
        return int(n or 0)


def device_history(
    engine: Engine, site: str, device_id: str, since: datetime, limit: int = 1440
) -> list[dict[str, Any]]:
    d = device_minute.c
    query = (
        select(device_minute)
        .where(d.site == site, d.device_id == device_id, d.minute >= since)
        .order_by(d.minute.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    rows.reverse()
    return rows


def energy_rows(
    engine: Engine,
    group: Sequence[str],
    site: str | None,
    since: datetime | None,
    until: datetime | None,
    miners_only: bool = True,
) -> Iterable[tuple[Any, ...]]:
    """(group values..., kWh, gap seconds) summed from the energy day ledger (PDUs would count the miners twice).
    Whole Astana days: `since` counts from the start of its Astana day, `until` up to the end of the day before."""
    d = energy_day.c
    cols = [d[g] for g in group]
    query = select(*cols, func.sum(d.energy_kwh), func.sum(d.gap_s)).group_by(*cols)
    if miners_only:
        query = query.where(d.kind == "miner")
    if site is not None:
        query = query.where(d.site == site)
    if since is not None:
        query = query.where(d.day >= astana_date(_aware(since)))
    if until is not None:
        query = query.where(d.day < astana_date(_aware(until)))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def owner_hours(engine: Engine, site: str | None, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """`owner_hour` rows with start <= hour < end (UTC), hours as aware datetimes."""
    o = owner_hour.c
    query = select(owner_hour).where(o.hour >= start, o.hour < end).order_by(o.hour, o.owner, o.source)
    if site is not None:
        query = query.where(o.site == site)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for r in rows:
        r["hour"] = _aware(r["hour"])
    return rows


def site_series(engine: Engine, site: str, since: datetime) -> list[dict[str, Any]]:
    s = site_minute.c
    query = select(site_minute).where(s.site == site, s.minute >= since).order_by(s.minute, s.source)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
