"""ServerTech Sentry4 (Sentry4-MIB, PRO1/PRO2, .1.3.6.1.4.1.1718.4).

Indexes: unit, unit.cord, unit.cord.phase, unit.cord.outlet (one unit "A", one input cord "AA", one phase here).
Scales: cord/outlet power W, apparent power VA, power factor hundredths, cord/phase energy tenths of kWh, outlet
energy Wh, outlet/phase current hundredths of A, voltage tenths of V, frequency tenths of Hz.
st4OutletState: unknown 0 / on 1 / off 2; st4OutletControlAction (R/W): none 0, on 1, off 2, reboot 3.
"""

from __future__ import annotations

from sim.pdus.families.common import (
    const,
    outlet_a,
    outlet_name,
    outlet_power_factor,
    outlet_w,
    outlet_wh,
    pdu_name,
    power_factor,
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

ST4 = "1.3.6.1.4.1.1718.4"
SYS_OBJECT_ID = oid(ST4)
MODEL = "C2W24XS-DCFC2B42"
PRODUCT = "Sentry Switched PDU"
FIRMWARE = "Version 8.0m"
FREQUENCY_HZ = 50.0

INT, STR = Syntax.INTEGER, Syntax.OCTETS
NORMAL = 0  # DeviceStatus normal(0)
ON, OFF = 1, 2  # DeviceState
CONTROL_ON, CONTROL_OFF, CONTROL_PEND_ON, CONTROL_PEND_OFF = 11, 10, 8, 9  # st4OutletControlState

# st4OutletControlAction: none 0, on 1, off 2, reboot 3. The queue* actions (4..6) need st4OutletQueueControl
# commit, which this simulator does not model: they are rejected with wrongValue.
CONTROL_ACTIONS = {0: Command("none"), 1: Command("on"), 2: Command("off"), 3: Command("reboot")}


def _o(suffix: str) -> tuple[int, ...]:
    return oid(f"{ST4}.{suffix}")


def sys_descr(s: PduState) -> str:
    return PRODUCT


def outlet_id(s: PduState, r: Row) -> str:
    return f"AA{r.outlet}"


def system_uptime(s: PduState, r: Row) -> str:
    seconds = s.uptime_ticks() // 100
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days} days {hours} hours {minutes} minutes {secs} seconds"


def control_state(s: PduState, r: Row) -> int:
    on = s.outlet(r.outlet).on
    if s.outlet_pending(r.outlet):
        return CONTROL_PEND_OFF if on else CONTROL_PEND_ON
    return CONTROL_ON if on else CONTROL_OFF


OBJECTS: tuple[Obj, ...] = (
    *system_group(sys_descr, SYS_OBJECT_ID, "DC operations"),
    # st4SystemConfig scalars
    Obj(_o("1.1.1.1"), "st4SystemProductName", STR, "scalar", const(PRODUCT)),
    Obj(_o("1.1.1.3"), "st4SystemFirmwareVersion", STR, "scalar", const(f"Sentry Switched PDU {FIRMWARE}")),
    Obj(_o("1.1.1.5"), "st4SystemNICSerialNumber", STR, "scalar", lambda s, r: (s.pdu.d.serial or "")[:8]),
    Obj(_o("1.1.1.8"), "st4SystemUptime", STR, "scalar", system_uptime),
    Obj(_o("1.1.1.21"), "st4SystemUnitCount", INT, "scalar", const(1)),
    # st4UnitConfigTable (unit)
    Obj(_o("1.2.2.1.2"), "st4UnitID", STR, "unit", const("A")),
    Obj(_o("1.2.2.1.3"), "st4UnitName", STR, "unit", pdu_name),
    Obj(_o("1.2.2.1.4"), "st4UnitProductSN", STR, "unit", serial),
    Obj(_o("1.2.2.1.5"), "st4UnitModel", STR, "unit", const(MODEL)),
    Obj(_o("1.2.2.1.7"), "st4UnitType", INT, "unit", const(0)),  # primary
    Obj(_o("1.2.2.1.30"), "st4UnitInputCordCount", INT, "unit", const(1)),
    # st4UnitMonitorTable
    Obj(_o("1.2.3.1.1"), "st4UnitStatus", INT, "unit", const(NORMAL)),
    # st4InputCordConfigTable (unit.cord)
    Obj(_o("1.3.2.1.2"), "st4InputCordID", STR, "cord", const("AA")),
    Obj(_o("1.3.2.1.3"), "st4InputCordName", STR, "cord", const("Master_Cord_A")),
    Obj(_o("1.3.2.1.7"), "st4InputCordNominalVoltage", INT, "cord", volts, scale=10),
    Obj(_o("1.3.2.1.24"), "st4InputCordOutletCount", INT, "cord", lambda s, r: len(s.pdu.outlets)),
    # st4InputCordMonitorTable
    Obj(_o("1.3.3.1.1"), "st4InputCordState", INT, "cord", const(ON)),
    Obj(_o("1.3.3.1.2"), "st4InputCordStatus", INT, "cord", const(NORMAL)),
    Obj(_o("1.3.3.1.3"), "st4InputCordActivePower", INT, "cord", total_w, scale=1),  # W
    Obj(_o("1.3.3.1.5"), "st4InputCordApparentPower", INT, "cord", total_w, scale=1),  # VA
    Obj(_o("1.3.3.1.8"), "st4InputCordPowerFactor", INT, "cord", power_factor, scale=100),
    Obj(_o("1.3.3.1.10"), "st4InputCordEnergy", INT, "cord", total_wh, scale=0.01),  # tenths of kWh
    Obj(_o("1.3.3.1.11"), "st4InputCordFrequency", INT, "cord", lambda s, r: FREQUENCY_HZ, scale=10),
    # st4PhaseConfigTable (unit.cord.phase)
    Obj(_o("1.5.2.1.2"), "st4PhaseID", STR, "phase", const("AA1")),
    Obj(_o("1.5.2.1.4"), "st4PhaseLabel", STR, "phase", const("L1-N")),
    # st4PhaseMonitorTable
    Obj(_o("1.5.3.1.1"), "st4PhaseState", INT, "phase", const(ON)),
    Obj(_o("1.5.3.1.2"), "st4PhaseStatus", INT, "phase", const(NORMAL)),
    Obj(_o("1.5.3.1.3"), "st4PhaseVoltage", INT, "phase", volts, scale=10),  # tenths of V
    Obj(_o("1.5.3.1.6"), "st4PhaseCurrent", INT, "phase", total_a, scale=100),  # hundredths of A
    Obj(_o("1.5.3.1.8"), "st4PhaseActivePower", INT, "phase", total_w, scale=1),
    Obj(_o("1.5.3.1.9"), "st4PhaseApparentPower", INT, "phase", total_w, scale=1),
    Obj(_o("1.5.3.1.10"), "st4PhasePowerFactor", INT, "phase", power_factor, scale=100),
    Obj(_o("1.5.3.1.13"), "st4PhaseEnergy", INT, "phase", total_wh, scale=0.01),
    # st4OutletConfigTable (unit.cord.outlet)
    Obj(_o("1.8.2.1.2"), "st4OutletID", STR, "outlet", outlet_id),
    Obj(_o("1.8.2.1.3"), "st4OutletName", STR, "outlet", outlet_name, control=NameControl(32)),
    # st4OutletMonitorTable
    Obj(_o("1.8.3.1.1"), "st4OutletState", INT, "outlet", when_on(ON, OFF)),
    Obj(_o("1.8.3.1.2"), "st4OutletStatus", INT, "outlet", const(NORMAL)),
    Obj(_o("1.8.3.1.3"), "st4OutletCurrent", INT, "outlet", outlet_a, scale=100),  # hundredths of A
    Obj(_o("1.8.3.1.6"), "st4OutletVoltage", INT, "outlet", volts, scale=10),
    Obj(_o("1.8.3.1.7"), "st4OutletActivePower", INT, "outlet", outlet_w, scale=1),  # W
    Obj(_o("1.8.3.1.9"), "st4OutletApparentPower", INT, "outlet", outlet_w, scale=1),  # VA
    Obj(_o("1.8.3.1.10"), "st4OutletPowerFactor", INT, "outlet", outlet_power_factor, scale=100),
    Obj(_o("1.8.3.1.14"), "st4OutletEnergy", INT, "outlet", outlet_wh, scale=1),  # Wh
    # st4OutletControlTable
    Obj(_o("1.8.5.1.1"), "st4OutletControlState", INT, "outlet", control_state),
    Obj(_o("1.8.5.1.2"), "st4OutletControlAction", INT, "outlet", const(0), control=EnumControl(CONTROL_ACTIONS)),
)

FAMILY = Family(
    name="sentry4",
    sys_object_id=SYS_OBJECT_ID,
    sys_descr=sys_descr,
    objects=OBJECTS,
    rows={
        "scalar": SCALAR,
        "unit": fixed_rows(1),
        "cord": fixed_rows(1, 1),
        "phase": fixed_rows(1, 1, 1),
        "outlet": outlet_rows((1, 1)),
    },
)
