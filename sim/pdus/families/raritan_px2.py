"""Raritan PX2 (PDU2-MIB, .1.3.6.1.4.1.13742.6).

Sensor tables are indexed pduId.inletId.sensorType / pduId.outletId.sensorType; every value is an Unsigned32 to
be divided by 10^decimalDigits, which the *SensorConfiguration tables publish per sensor (current 3 digits, so
milliamps; power and energy 0 digits, so W and Wh; power factor 2; frequency 1). Switching: switchingOperation
off 0 / on 1 / cycle 2; outletSwitchingState is a SensorStateEnumeration (on 7, off 8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sim.pdus.families.common import (
    const,
    outlet_a,
    outlet_label,
    outlet_name,
    outlet_power_factor,
    outlet_w,
    outlet_wh,
    pdu_name,
    power_factor,
    rating_w,
    serial,
    system_group,
    total_a,
    total_w,
    total_wh,
    volts,
    when_on,
)
from sim.pdus.mib import (
    SCALAR,
    Command,
    EnumControl,
    Family,
    NameControl,
    Obj,
    Row,
    Syntax,
    fixed_rows,
    oid,
    outlet_rows,
)
from sim.pdus.state import PduState

PDU2 = "1.3.6.1.4.1.13742.6"
SYS_OBJECT_ID = oid(PDU2)
MODEL = "PX2-5496"
FIRMWARE = "3.5.0.5-46328"
FREQUENCY_HZ = 50.0

INT, UNS, STR = Syntax.INTEGER, Syntax.UNSIGNED, Syntax.OCTETS
TRUE = 1  # TruthValue true(1), false(2)
STATE_NORMAL, STATE_ON, STATE_OFF = 4, 7, 8  # SensorStateEnumeration

# SensorUnitsEnumeration
NONE, VOLT, AMP, WATT, VOLTAMP, WATTHOUR, HERTZ = -1, 1, 2, 3, 4, 5, 8

# switchingOperation: off 0, on 1, cycle 2
SWITCHING = {0: Command("off"), 1: Command("on"), 2: Command("reboot")}


@dataclass(frozen=True)
class Sensor:
    """One sensor type: what it measures (physical units), its decimal digits and its units enum."""

    type: int
    name: str
    read: Callable[[PduState, Row], float]
    digits: int
    units: int


def _on_off(s: PduState, r: Row) -> float:
    return 0.0  # a discrete sensor: its state column (on 7 / off 8) carries the information


INLET_SENSORS: dict[int, Sensor] = {
    s.type: s
    for s in (
        Sensor(1, "rmsCurrent", total_a, 3, AMP),
        Sensor(4, "rmsVoltage", volts, 0, VOLT),
        Sensor(5, "activePower", total_w, 0, WATT),
        Sensor(6, "apparentPower", total_w, 0, VOLTAMP),
        Sensor(7, "powerFactor", power_factor, 2, NONE),
        Sensor(8, "activeEnergy", total_wh, 0, WATTHOUR),
        Sensor(23, "frequency", lambda s, r: FREQUENCY_HZ, 1, HERTZ),
    )
}
OUTLET_SENSORS: dict[int, Sensor] = {
    s.type: s
    for s in (
        Sensor(1, "rmsCurrent", outlet_a, 3, AMP),
        Sensor(4, "rmsVoltage", volts, 0, VOLT),
        Sensor(5, "activePower", outlet_w, 0, WATT),
        Sensor(6, "apparentPower", outlet_w, 0, VOLTAMP),
        Sensor(7, "powerFactor", outlet_power_factor, 2, NONE),
        Sensor(8, "activeEnergy", outlet_wh, 0, WATTHOUR),
        Sensor(14, "onOff", _on_off, 0, NONE),
    )
}


def _o(suffix: str) -> tuple[int, ...]:
    return oid(f"{PDU2}.{suffix}")


def sys_descr(s: PduState) -> str:
    return f"Raritan {MODEL} - Firmware Version {FIRMWARE}"


def _sensor_table(table: dict[int, Sensor]) -> tuple[Callable[..., int], Callable[..., int], Callable[..., int]]:
    """Getters for (decimal digits, units, value) of a sensor row of `table`."""

    def digits(s: PduState, r: Row) -> int:
        return table[r.sensor].digits

    def units(s: PduState, r: Row) -> int:
        return table[r.sensor].units

    def value(s: PduState, r: Row) -> int:
        sensor = table[r.sensor]
        return max(0, round(sensor.read(s, r) * 10**sensor.digits))

    return digits, units, value


inlet_digits, inlet_units, inlet_value = _sensor_table(INLET_SENSORS)
outlet_digits, outlet_units, outlet_value = _sensor_table(OUTLET_SENSORS)


def outlet_sensor_state(s: PduState, r: Row) -> int:
    if r.sensor == 14:
        return STATE_ON if s.outlet(r.outlet).on else STATE_OFF
    return STATE_NORMAL


def _inlet_sensor_rows(n: int) -> Sequence[Row]:
    return tuple(Row((1, 1, t), sensor=t) for t in sorted(INLET_SENSORS))


def _outlet_sensor_rows(n: int) -> Sequence[Row]:
    return tuple(Row((1, o, t), outlet=o, sensor=t) for o in range(1, n + 1) for t in sorted(OUTLET_SENSORS))


OBJECTS: tuple[Obj, ...] = (
    *system_group(sys_descr, SYS_OBJECT_ID, "DC operations"),
    Obj(_o("3.1"), "pduCount", INT, "scalar", const(1)),
    # nameplateTable (pduId)
    Obj(_o("3.2.1.1.2"), "pduManufacturer", STR, "unit", const("Raritan")),
    Obj(_o("3.2.1.1.3"), "pduModel", STR, "unit", const(MODEL)),
    Obj(_o("3.2.1.1.4"), "pduSerialNumber", STR, "unit", serial),
    Obj(_o("3.2.1.1.5"), "pduRatedVoltage", STR, "unit", const("220-240V")),
    Obj(_o("3.2.1.1.6"), "pduRatedCurrent", STR, "unit", lambda s, r: f"{round(s.rating_w() / 230)}A"),
    Obj(_o("3.2.1.1.7"), "pduRatedFrequency", STR, "unit", const("50/60Hz")),
    Obj(_o("3.2.1.1.8"), "pduRatedVA", STR, "unit", lambda s, r: f"{rating_w(s, r) / 1000:.1f}kVA"),
    # unitConfigurationTable (pduId)
    Obj(_o("3.2.2.1.2"), "inletCount", INT, "unit", const(1)),
    Obj(_o("3.2.2.1.4"), "outletCount", INT, "unit", lambda s, r: len(s.pdu.outlets)),
    Obj(_o("3.2.2.1.13"), "pduName", STR, "unit", pdu_name),
    # controllerConfigurationTable (pduId.boardType.boardIndex): the main controller's firmware
    Obj(_o("3.2.3.1.4"), "boardVersion", STR, "board", const("0x05")),
    Obj(_o("3.2.3.1.6"), "boardFirmwareVersion", STR, "board", const(FIRMWARE)),
    # inletConfigurationTable (pduId.inletId)
    Obj(_o("3.3.3.1.2"), "inletLabel", STR, "inlet", const("I1")),
    Obj(_o("3.3.3.1.3"), "inletName", STR, "inlet", const("")),
    Obj(_o("3.3.3.1.5"), "inletPoleCount", INT, "inlet", const(2)),
    # inletSensorConfigurationTable (pduId.inletId.sensorType)
    Obj(_o("3.3.4.1.4"), "inletSensorLogAvailable", INT, "inlet_sensor", const(TRUE)),
    Obj(_o("3.3.4.1.6"), "inletSensorUnits", INT, "inlet_sensor", inlet_units),
    Obj(_o("3.3.4.1.7"), "inletSensorDecimalDigits", UNS, "inlet_sensor", inlet_digits),
    # outletConfigurationTable (pduId.outletId)
    Obj(_o("3.5.3.1.2"), "outletLabel", STR, "outlet", outlet_label),
    Obj(_o("3.5.3.1.3"), "outletName", STR, "outlet", outlet_name, control=NameControl(32)),
    Obj(_o("3.5.3.1.28"), "outletSwitchable", INT, "outlet", const(TRUE)),
    # outletSensorConfigurationTable (pduId.outletId.sensorType)
    Obj(_o("3.5.4.1.4"), "outletSensorLogAvailable", INT, "outlet_sensor", const(TRUE)),
    Obj(_o("3.5.4.1.6"), "outletSensorUnits", INT, "outlet_sensor", outlet_units),
    Obj(_o("3.5.4.1.7"), "outletSensorDecimalDigits", UNS, "outlet_sensor", outlet_digits),
    # outletSwitchControlTable (pduId.outletId)
    Obj(_o("4.1.2.1.2"), "switchingOperation", INT, "outlet", when_on(1, 0), control=EnumControl(SWITCHING)),
    Obj(_o("4.1.2.1.3"), "outletSwitchingState", INT, "outlet", when_on(STATE_ON, STATE_OFF)),
    # measurementsInletSensorTable (pduId.inletId.sensorType)
    Obj(_o("5.2.3.1.2"), "measurementsInletSensorIsAvailable", INT, "inlet_sensor", const(TRUE)),
    Obj(_o("5.2.3.1.3"), "measurementsInletSensorState", INT, "inlet_sensor", const(STATE_NORMAL)),
    Obj(_o("5.2.3.1.4"), "measurementsInletSensorValue", UNS, "inlet_sensor", inlet_value),
    # measurementsOutletSensorTable (pduId.outletId.sensorType)
    Obj(_o("5.4.3.1.2"), "measurementsOutletSensorIsAvailable", INT, "outlet_sensor", const(TRUE)),
    Obj(_o("5.4.3.1.3"), "measurementsOutletSensorState", INT, "outlet_sensor", outlet_sensor_state),
    Obj(_o("5.4.3.1.4"), "measurementsOutletSensorValue", UNS, "outlet_sensor", outlet_value),
)

FAMILY = Family(
    name="raritan_px2",
    sys_object_id=SYS_OBJECT_ID,
    sys_descr=sys_descr,
    objects=OBJECTS,
    rows={
        "scalar": SCALAR,
        "unit": fixed_rows(1),
        "board": fixed_rows(1, 1, 1),
        "inlet": fixed_rows(1, 1),
        "inlet_sensor": _inlet_sensor_rows,
        "outlet": outlet_rows((1,)),
        "outlet_sensor": _outlet_sensor_rows,
    },
)
