"""Pieces every family table uses: the SNMPv2-MIB system group and small getters over a PDU's live state."""

from __future__ import annotations

from collections.abc import Callable

from sim.pdus.mib import Getter, Obj, Oid, Row, Syntax, Value, oid
from sim.pdus.state import LOW_LOAD, NEAR_OVERLOAD, PduState

SYSTEM = oid("1.3.6.1.2.1.1")


def system_group(sys_descr: Callable[[PduState], str], sys_object_id: Oid, contact: str) -> tuple[Obj, ...]:
    """sysDescr, sysObjectID (the vendor's real value), sysUpTime, sysContact, sysName, sysLocation, sysServices."""
    return (
        Obj((*SYSTEM, 1), "sysDescr", Syntax.OCTETS, "scalar", lambda s, r: sys_descr(s)),
        Obj((*SYSTEM, 2), "sysObjectID", Syntax.OID, "scalar", const(sys_object_id)),
        Obj((*SYSTEM, 3), "sysUpTime", Syntax.TICKS, "scalar", lambda s, r: s.uptime_ticks()),
        Obj((*SYSTEM, 4), "sysContact", Syntax.OCTETS, "scalar", const(contact)),
        Obj((*SYSTEM, 5), "sysName", Syntax.OCTETS, "scalar", lambda s, r: s.pdu.d.id),
        Obj((*SYSTEM, 6), "sysLocation", Syntax.OCTETS, "scalar", location),
        Obj((*SYSTEM, 7), "sysServices", Syntax.INTEGER, "scalar", const(72)),
    )



def const(value: Value) -> Getter:
    return lambda s, r: value


def location(s: PduState, r: Row) -> str:
    d = s.pdu.d
    return f"{d.hall}/{d.rack}" if d.rack else d.hall


def serial(s: PduState, r: Row) -> str:
    return s.pdu.d.serial or ""


def pdu_name(s: PduState, r: Row) -> str:
    return s.pdu.d.id


def outlet_count(s: PduState, r: Row) -> int:
    return len(s.pdu.outlets)


# ---------------------------------------------------------------- device totals (physical units)
def total_w(s: PduState, r: Row) -> float:
    return s.power_w()


def peak_w(s: PduState, r: Row) -> float:
    s.power_w()
    return s.peak_w


def total_a(s: PduState, r: Row) -> float:
    return s.current_a()


def total_wh(s: PduState, r: Row) -> float:
    return s.energy_wh()


def volts(s: PduState, r: Row) -> float:
    return s.voltage


def power_factor(s: PduState, r: Row) -> float:
    return s.power_factor()


def rating_w(s: PduState, r: Row) -> float:
    return s.rating_w()


# ---------------------------------------------------------------- per outlet (physical units)
def outlet_w(s: PduState, r: Row) -> float:
    return s.outlet(r.outlet).power_w()


def outlet_a(s: PduState, r: Row) -> float:
    return s.outlet(r.outlet).current_a(s.voltage)


def outlet_wh(s: PduState, r: Row) -> float:
    return s.outlet(r.outlet).energy_wh()


def outlet_name(s: PduState, r: Row) -> str:
    return s.outlet(r.outlet).name


def outlet_number(s: PduState, r: Row) -> int:
    return r.outlet


def outlet_label(s: PduState, r: Row) -> str:
    return str(r.outlet)


def outlet_power_factor(s: PduState, r: Row) -> float:
    return 1.0 if s.outlet(r.outlet).power_w() > 0 else 0.0


def outlet_rated_w(s: PduState, r: Row) -> float:
    m = s.outlet(r.outlet).miner
    return m.phys.spec.nominal_w if m is not None else 0.0


def when_on(on_value: int, off_value: int) -> Getter:
    """An enum getter: `on_value` while the outlet is switched on, else `off_value`."""
    return lambda s, r: on_value if s.outlet(r.outlet).on else off_value


def when_pending(pending: int, idle: int) -> Getter:
    return lambda s, r: pending if s.outlet_pending(r.outlet) else idle


def load_state(low: int, normal: int, near: int, over: int) -> Getter:
    """A load-state enum from the device's draw against its rating."""

    def get(s: PduState, r: Row) -> int:
        f = s.load_fraction()
        if f >= 1.0:
            return over
        if f >= NEAR_OVERLOAD:
            return near
        return low if f < LOW_LOAD else normal

    return get
