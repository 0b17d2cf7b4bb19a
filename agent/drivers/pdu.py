"""PDUs over SNMP: one generic driver that reads a family table (agent/oids/*.toml) - no per-vendor code.

Identification: sysObjectID selects candidate families (longest prefix first); the first whose `probe` columns
answer wins (APC rPDU and rPDU2 share sysObjectIDs); when none does, every other family of the same vendor is
probed before giving up (a newer model, another product line), and the error says what was tried. Reads: one
multi-column GETBULK walk of the total, line and outlet columns (plus the Raritan decimal-digits tables), scaled to
W / A / kWh; the PDU's power is its own total, else the sum of its phases (lines, infeeds, cords), else line current
x voltage, else the sum of its outlets, and `power_source` says which. Switching: the vendor's control OID and
value, then read back until the outlet state agrees (a SET can "succeed" without doing anything).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from agent.oids import Column, FamilyTable, candidates, load_tables, same_vendor
from agent.transport.snmp import Oid, SnmpSession, oid_text
from kuat.wire import v1

from .base import CommandUnsupported, DeviceError, OutletAction, PduDriver, register_pdu

log = logging.getLogger(__name__)

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
READBACK_TRIES = 10
READBACK_INTERVAL_S = 0.2

Rows = dict[Oid, Any]


def pdu_device_id(ip: str) -> str:
    return f"pdu-{ip}"


# ------------------------------------------------------------------ pure: walked rows -> PduSample pieces


def scaled(raw: Any, column: Column, digits: Any = None) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int):
        return None
    if column.negative_is_none and raw < 0:
        return None
    value = raw * column.scale
    if column.digits is not None:
        value /= 10 ** int(digits or 0)
    return round(value, 6)


def sensor_rows(values: Rows, digits: Rows, column: Column) -> dict[Oid, float | None]:
    """Rows of a value column, keyed without the trailing sensorType when the column selects one sensor."""
    out: dict[Oid, float | None] = {}
    for index, raw in values.items():
        if column.sensor is not None:
            if not index or index[-1] != column.sensor:
                continue
            out[index[:-1]] = scaled(raw, column, digits.get(index))
        else:
            out[index] = scaled(raw, column, digits.get(index))
    return out


def total_of(column: Column | None, walked: dict[str, Rows]) -> float | None:
    if column is None:
        return None
    rows = sensor_rows(walked.get(column.oid, {}), walked.get(column.digits or "", {}), column)
    numbers = [v for v in rows.values() if v is not None]
    return round(sum(numbers), 6) if numbers else None


def apparent_power(table: FamilyTable, walked: dict[str, Rows]) -> float | None:
    """Sum over lines of current x voltage (VA); one voltage row (a scalar) applies to every line."""
    current_col, voltage_col = table.lines.get("current_a"), table.lines.get("voltage_v")
    if current_col is None or voltage_col is None:
        return None
    currents = sensor_rows(walked.get(current_col.oid, {}), walked.get(current_col.digits or "", {}), current_col)
    volts = sensor_rows(walked.get(voltage_col.oid, {}), walked.get(voltage_col.digits or "", {}), voltage_col)
    single = next(iter(volts.values())) if len(volts) == 1 else None
    products = [
        amps * volt
        for index, amps in currents.items()
        if amps is not None and (volt := volts.get(index, single)) is not None
    ]
    return round(sum(products), 3) if products else None


# the columns each power source reads: (section, field)
SOURCE_COLUMNS: dict[v1.PduPowerSource, tuple[tuple[str, str], ...]] = {
    v1.PduPowerSource.TOTAL: (("total", "power_w"),),
    v1.PduPowerSource.PHASES: (("lines", "power_w"),),
    v1.PduPowerSource.CURRENT_VOLTAGE: (("lines", "current_a"), ("lines", "voltage_v")),
    v1.PduPowerSource.OUTLETS: (("outlets", "power_w"),),
}


def power_of(
    table: FamilyTable, walked: dict[str, Rows], outlets: list[v1.OutletSample]
) -> tuple[float | None, v1.PduPowerSource | None]:
    """The PDU's power and where it comes from: its total, else its phases' power, else line current x voltage,
    else its outlets' power."""
    power = total_of(table.total.get("power_w"), walked)
    if power is not None:
        return power, v1.PduPowerSource.TOTAL
    power = total_of(table.lines.get("power_w"), walked)
    if power is not None:
        return power, v1.PduPowerSource.PHASES
    power = apparent_power(table, walked)
    if power is not None:
        return power, v1.PduPowerSource.CURRENT_VOLTAGE
    if any(o.power_w is not None for o in outlets):
        return round(sum(o.power_w or 0.0 for o in outlets), 3), v1.PduPowerSource.OUTLETS
    return None, None


def outlet_keys(table: FamilyTable, walked: dict[str, Rows]) -> list[Oid]:
    """Every outlet row any outlet column reported, as its key (the last `key_length` index parts)."""
    keys: set[Oid] = set()
    for name, column in table.outlets.items():
        rows = walked.get(column.oid, {})
        for index in rows:
            key = index[:-1] if column.sensor is not None else index
            if len(key) >= table.key_length and (column.sensor is None or index[-1] == column.sensor):
                keys.add(key[-table.key_length :])
        if name == "name" and column.fallback:
            keys.update(k[-table.key_length :] for k in walked.get(column.fallback, {}))
    return sorted(keys)


def outlet_numbers(keys: list[Oid]) -> dict[Oid, int]:
    """Outlet number as the PDU prints it: the last index part when one unit/cord, else the position (1-based)."""
    prefixes = {k[:-1] for k in keys}
    if len(prefixes) <= 1:
        return {k: k[-1] for k in keys}
    return {k: n for n, k in enumerate(keys, start=1)}


def _state(raw: Any, column: Column | None) -> v1.OutletState:
    if column is None or not isinstance(raw, int):
        return v1.OutletState.UNKNOWN
    return v1.OutletState(column.states.get(raw, "unknown"))


def by_key(rows: dict[Oid, Any], key_length: int) -> dict[Oid, Any]:
    """Rows re-keyed by their outlet key (the last `key_length` index parts), for O(1) lookups."""
    return {index[-key_length:]: value for index, value in rows.items()}


def build_outlets(table: FamilyTable, walked: dict[str, Rows], keys: list[Oid] | None = None
                  ) -> list[v1.OutletSample]:
    """Outlet samples; `keys`: the outlets when known already (the last walk's), else found in `walked`."""
    keys = outlet_keys(table, walked) if keys is None else keys
    numbers = outlet_numbers(keys)
    n = table.key_length
    figures = {
        name: by_key(sensor_rows(walked.get(col.oid, {}), walked.get(col.digits or "", {}), col), n)
        for name, col in table.outlets.items()
        if name in ("current_a", "power_w", "energy_kwh")
    }
    state_col = table.outlets.get("state")
    states = by_key(walked.get(state_col.oid, {}), n) if state_col else {}
    names = _names(table.outlets.get("name"), walked, n)
    return [
        v1.OutletSample(
            index=numbers[key],
            name=names.get(key),
            state=_state(states.get(key), state_col),
            current_a=figures.get("current_a", {}).get(key),
            power_w=figures.get("power_w", {}).get(key),
            energy_kwh=figures.get("energy_kwh", {}).get(key),
            switchable="on" in table.control,
        )
        for key in keys
    ]


def _names(column: Column | None, walked: dict[str, Rows], key_length: int) -> dict[Oid, str]:
    """Outlet names; an empty name falls back to the column's `fallback` (Raritan outletLabel)."""
    if column is None:
        return {}
    names: dict[Oid, str] = {}
    for oid in (column.fallback, column.oid):  # the primary column last: it wins where it is not empty
        for key, value in by_key(walked.get(oid or "", {}), key_length).items():
            if isinstance(value, str) and value.strip():
                names[key] = value.strip()
    return names


FAST_FIELDS = ("power_w", "state")  # walked on every read: what the quota loop steers by
SLOW_EVERY_S = 60.0  # the rest (outlet names, currents, energy counters) is walked this often and kept between


def walk_columns(table: FamilyTable) -> list[str]:
    """Every column a read walks (value, digits and fallback columns), once each."""
    columns: list[str] = []
    for column in [*table.total.values(), *table.lines.values(), *table.outlets.values()]:
        for oid in (column.oid, column.digits, column.fallback):
            if oid and oid not in columns:
                columns.append(oid)
    return columns


def fast_columns(table: FamilyTable, source: v1.PduPowerSource | None = None) -> list[str]:
    """The value columns read on every poll: those of the power source in use (all that could be one before the
    first walk), and the outlets' power and state (decimal-digits columns are static: walked with the slow ones)."""
    sections = {"total": table.total, "lines": table.lines, "outlets": table.outlets}
    sources = [source] if source is not None else list(SOURCE_COLUMNS)
    wanted = [sections[section].get(name) for s in sources for section, name in SOURCE_COLUMNS[s]]
    wanted += [table.outlets.get(name) for name in FAST_FIELDS]
    return list(dict.fromkeys(column.oid for column in wanted if column is not None))


def build_pdu_sample(
    ip: str,
    table: FamilyTable,
    walked: dict[str, Rows],
    identity: dict[str, str | None],
    device_id: str | None = None,
    *,
    keys: list[Oid] | None = None,
) -> v1.PduSample:
    outlets = build_outlets(table, walked, keys)
    power, source = power_of(table, walked, outlets)
    errors = []
    if source == v1.PduPowerSource.OUTLETS:
        errors.append("no total power reading: sum of outlet readings")
    elif power is None:
        errors.append("the PDU reports no power reading")
    energy = total_of(table.total.get("energy_kwh"), walked)
    if energy is None:
        energy = total_of(table.lines.get("energy_kwh"), walked)
    return v1.PduSample(
        device_id=device_id or pdu_device_id(ip),
        ip=ip,
        available=True,
        family=table.family,
        model=identity.get("model"),
        serial=identity.get("serial"),
        power_w=power,
        power_source=source,
        energy_kwh=energy,
        outlets=outlets,
        errors=errors,
    )


# ------------------------------------------------------------------ the driver


class SnmpPdu(PduDriver):
    def __init__(self, session: SnmpSession, table: FamilyTable, *, device_id: str | None = None) -> None:
        self.ip = session.host
        self.session = session
        self.table = table
        self.device_id = device_id
        self.identity: dict[str, str | None] | None = None
        self._keys: dict[int, Oid] = {}
        self._columns = walk_columns(table)
        self._fast = fast_columns(table)
        self._slow = [c for c in self._columns if c not in self._fast]
        self._slow_rows: dict[str, Rows] = {}
        self._slow_at = -math.inf
        self._instances: list[tuple[str, Oid]] = []  # (fast column, row index) found by the last walk
        self._fast_oids: list[str] = []  # their OIDs, as the GET asks for them
        self._outlet_keys: list[Oid] = []  # the outlets the last walk found

    async def read(self) -> v1.PduSample:
        """Power and outlet states on every read; names, currents and energy counters every SLOW_EVERY_S (SNMP
        decoding is most of a gateway's CPU: this halves what each poll walks)."""
        if self.identity is None:
            self.identity = await self._read_identity()
        now = time.monotonic()
        fast = None if now - self._slow_at >= SLOW_EVERY_S else await self._get_fast()
        if fast is not None:
            walked = {**self._slow_rows, **fast}
            return build_pdu_sample(self.ip, self.table, walked, self.identity, self.device_id, keys=self._outlet_keys)
        walked = await self.session.walk(self._columns)
        self._outlet_keys = outlet_keys(self.table, walked)
        self._keys = {n: k for k, n in outlet_numbers(self._outlet_keys).items()}
        sample = build_pdu_sample(self.ip, self.table, walked, self.identity, self.device_id, keys=self._outlet_keys)
        # between walks, GET only the rows of the power source this walk used, and the outlets' power and state
        self._fast = fast_columns(self.table, sample.power_source)
        self._slow = [c for c in self._columns if c not in self._fast]
        self._slow_rows, self._slow_at = {c: walked[c] for c in self._slow}, now
        self._instances = [(c, index) for c in self._fast for index in walked[c]]
        self._fast_oids = [f"{column}.{oid_text(index)}" for column, index in self._instances]
        return sample

    async def _get_fast(self) -> dict[str, Rows] | None:
        """The fast columns' rows as the last walk found them, by GET of exactly those instances (a GETBULK walk
        reads up to max-repetitions rows past each column's end). None when a row is gone: walk again."""
        rows: dict[str, Rows] = {c: {} for c in self._fast}
        got = await self.session.get(self._fast_oids)
        for (column, index), oid in zip(self._instances, self._fast_oids, strict=True):
            value = got.get(oid)
            if value is None:
                return None
            rows[column][index] = value
        return rows

    async def _read_identity(self) -> dict[str, str | None]:
        identity: dict[str, str | None] = {"model": None, "serial": None}
        if self.table.identity:
            walked = await self.session.walk(list(self.table.identity.values()))
            for name, oid in self.table.identity.items():
                values = [v for v in walked.get(oid, {}).values() if isinstance(v, str) and v.strip()]
                identity[name] = values[0].strip() if values else None
        if identity["model"] is None:
            descr = (await self.session.get([SYS_DESCR])).get(SYS_DESCR)
            identity["model"] = descr.strip()[:80] if isinstance(descr, str) and descr.strip() else None
        return identity

    async def _outlet_key(self, outlet: int) -> Oid:
        if not self._keys:
            await self.read()
        if outlet not in self._keys:
            known = ", ".join(map(str, sorted(self._keys))) or "none"
            raise DeviceError(f"{self.ip}: no outlet {outlet} on this PDU (outlets: {known})")
        return self._keys[outlet]

    async def switch(self, outlet: int, action: OutletAction) -> None:
        control = self.table.control.get(action)
        if control is None:
            raise CommandUnsupported(f"{self.table.family} PDUs have no known control OID for '{action}'")
        key = await self._outlet_key(outlet)
        await self.session.set_int(f"{control.oid}.{oid_text(key)}", control.value)
        log.info("%s outlet %d: %s sent (%s=%d)", self.ip, outlet, action, control.oid, control.value)
        if action in ("on", "off"):
            await self._confirm(outlet, key, v1.OutletState(action))

    async def _confirm(self, outlet: int, key: Oid, wanted: v1.OutletState) -> None:
        """Read the state back (bounded) until it agrees; a PDU may accept a SET and do nothing."""
        column = self.table.outlets.get("state")
        if column is None:
            return
        oid = f"{column.oid}.{oid_text(key)}"
        seen: v1.OutletState = v1.OutletState.UNKNOWN
        for _ in range(READBACK_TRIES):
            seen = _state((await self.session.get([oid])).get(oid), column)
            if seen == wanted:
                return
            await asyncio.sleep(READBACK_INTERVAL_S)
        raise DeviceError(f"{self.ip} outlet {outlet}: asked {wanted.value}, still reads {seen.value}")


async def identify_family(session: SnmpSession) -> FamilyTable:
    """The family table of the PDU behind `session`: the families whose sysObjectID prefix matches, then every
    other family of the same vendor; the first whose probe columns answer."""
    sys_oid = (await session.get([SYS_OBJECT_ID])).get(SYS_OBJECT_ID)
    if not isinstance(sys_oid, tuple):
        raise DeviceError(f"{session.host}: no sysObjectID (not an SNMP agent Kuat can identify)")
    text = oid_text(sys_oid)
    matched = candidates(text)
    others = [t for t in same_vendor(text) if t not in matched]
    if not matched and not others:
        raise DeviceError(f"{session.host}: sysObjectID {text} is no PDU family Kuat knows")
    for table in [*matched, *others]:
        if await session.first_rows(list(table.probe)):
            if table in others:
                log.info("%s: sysObjectID %s is not in the %s table, but its probe answered", session.host, text,
                         table.family)
            return table
    tried = ", ".join(t.family for t in [*matched, *others])
    raise DeviceError(
        f"{session.host}: sysObjectID {text} matches {tried} but none of their probe columns answered: "
        "not a PDU table Kuat can read (an environmental monitor, or a family Kuat does not know yet)"
    )


def _factory(family: str) -> Any:
    def make(session: SnmpSession, **kwargs: Any) -> PduDriver:
        return SnmpPdu(session, load_tables()[family], **kwargs)

    return make


for _family in load_tables():
    register_pdu(_family)(_factory(_family))
