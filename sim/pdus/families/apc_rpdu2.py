"""APC Rack PDU 2G (PowerNet-MIB rPDU2, .1.3.6.1.4.1.318.1.1.26), metered-by-outlet with switching (AP86xx).

Scales (PowerNet-MIB): device/phase power in hundredths of kW, energy in tenths of kWh, current in tenths of A,
outlet metered power in W. Gotcha kept from the real device: the outlet *state* enum is off 1 / on 2 while the
*control* enum is immediateOn 1 / immediateOff 2 (and reading the control column returns 1 when on, 2 when off).
"""

from __future__ import annotations

from sim.pdus.families.common import (
    const,
    load_state,
    location,
    outlet_a,
    outlet_name,
    outlet_number,
    outlet_w,
    outlet_wh,
    pdu_name,
    peak_w,
    power_factor,
    rating_w,
    serial,
    system_group,
    total_a,
    total_w,
    total_wh,
    volts,
    when_on,
    when_pending,
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

RPDU2 = "1.3.6.1.4.1.318.1.1.26"
SYS_OBJECT_ID = oid("1.3.6.1.4.1.318.1.3.4.6")  # masterSwitchrPDU2
MODEL = "AP8641"
FIRMWARE = "v6.9.6"
DELAYED_S = 5.0  # rPDU2OutletSwitchedConfigPowerOnTime / PowerOffTime we report and honour

INT, STR = Syntax.INTEGER, Syntax.OCTETS

# rPDU2OutletSwitchedControlCommand: immediateOn 1, immediateOff 2, immediateReboot 3, outletUnknown 4 (read
# only), delayedOn 5, delayedOff 6, delayedReboot 7, cancelPendingCommand 8
OUTLET_COMMANDS = {
    1: Command("on"),
    2: Command("off"),
    3: Command("reboot"),
    5: Command("on", DELAYED_S),
    6: Command("off", DELAYED_S),
    7: Command("reboot", DELAYED_S),
    8: Command("none"),
}
# rPDU2DeviceControlCommand: immediateAllOn 1, delayedAllOn 2, immediateAllOff 3, immediateAllReboot 4,
# delayedAllReboot 5, noCommandAll 6, delayedAllOff 7, cancelAllPendingCommands 8
DEVICE_COMMANDS = {
    1: Command("on"),
    2: Command("on", DELAYED_S),
    3: Command("off"),
    4: Command("reboot"),
    5: Command("reboot", DELAYED_S),
    6: Command("none"),
    7: Command("off", DELAYED_S),
    8: Command("none"),
}


def _o(suffix: str) -> tuple[int, ...]:
    return oid(f"{RPDU2}.{suffix}")


def sys_descr(s: PduState) -> str:
    return (
        f"APC Web/SNMP Management Card (MB:v4.1.0 PF:{FIRMWARE} PN:apc_hw05_aos_696.bin AF1:{FIRMWARE} "
        f"AN1:apc_hw05_rpdu2g_696.bin MN:{MODEL} HR:02 SN: {s.pdu.d.serial} MD:03/14/2021)"
    )


def _device_pending(s: PduState, r: Row) -> int:
    return 1 if s.any_pending() else 2  # commandPending 1, noCommandPending 2


def _device_command(s: PduState, r: Row) -> int:
    return 6  # noCommandAll: what the device reads back when idle


OBJECTS: tuple[Obj, ...] = (
    *system_group(sys_descr, SYS_OBJECT_ID, "DC operations"),
    Obj(_o("1"), "rPDU2IdentTableSize", INT, "scalar", const(1)),
    # rPDU2IdentTable
    Obj(_o("2.1.1"), "rPDU2IdentIndex", INT, "device", const(1)),
    Obj(_o("2.1.2"), "rPDU2IdentModule", INT, "device", const(1)),
    Obj(_o("2.1.3"), "rPDU2IdentName", STR, "device", pdu_name),
    Obj(_o("2.1.4"), "rPDU2IdentLocation", STR, "device", location),
    Obj(_o("2.1.5"), "rPDU2IdentHardwareRev", STR, "device", const("02")),
    Obj(_o("2.1.6"), "rPDU2IdentFirmwareRev", STR, "device", const(FIRMWARE)),
    Obj(_o("2.1.7"), "rPDU2IdentDateOfManufacture", STR, "device", const("03/14/2021")),
    Obj(_o("2.1.8"), "rPDU2IdentModelNumber", STR, "device", const(MODEL)),
    Obj(_o("2.1.9"), "rPDU2IdentSerialNumber", STR, "device", serial),
    Obj(_o("2.1.12"), "rPDU2IdentLongDescription", STR, "device",
        const("APC Switched Rack PDU 2G, Metered-by-Outlet with Switching")),
    Obj(_o("3"), "rPDU2DeviceTableSize", INT, "scalar", const(1)),
    # rPDU2DevicePropertiesTable
    Obj(_o("4.2.1.1"), "rPDU2DevicePropertiesIndex", INT, "device", const(1)),
    Obj(_o("4.2.1.2"), "rPDU2DevicePropertiesModule", INT, "device", const(1)),
    Obj(_o("4.2.1.3"), "rPDU2DevicePropertiesName", STR, "device", pdu_name),
    Obj(_o("4.2.1.4"), "rPDU2DevicePropertiesNumOutlets", INT, "device", lambda s, r: len(s.pdu.outlets)),
    Obj(_o("4.2.1.5"), "rPDU2DevicePropertiesNumSwitchedOutlets", INT, "device", lambda s, r: len(s.pdu.outlets)),
    Obj(_o("4.2.1.6"), "rPDU2DevicePropertiesNumMeteredOutlets", INT, "device", lambda s, r: len(s.pdu.outlets)),
    Obj(_o("4.2.1.7"), "rPDU2DevicePropertiesNumPhases", INT, "device", const(1)),
    Obj(_o("4.2.1.13"), "rPDU2DevicePropertiesDevicePowerRating", INT, "device", rating_w, scale=0.01),
    # rPDU2DeviceStatusTable
    Obj(_o("4.3.1.1"), "rPDU2DeviceStatusIndex", INT, "device", const(1)),
    Obj(_o("4.3.1.2"), "rPDU2DeviceStatusModule", INT, "device", const(1)),
    Obj(_o("4.3.1.3"), "rPDU2DeviceStatusName", STR, "device", pdu_name),
    Obj(_o("4.3.1.4"), "rPDU2DeviceStatusLoadState", INT, "device", load_state(1, 2, 3, 4)),
    Obj(_o("4.3.1.5"), "rPDU2DeviceStatusPower", INT, "device", total_w, scale=0.1),  # hundredths of kW
    Obj(_o("4.3.1.6"), "rPDU2DeviceStatusPeakPower", INT, "device", peak_w, scale=0.1),
    Obj(_o("4.3.1.9"), "rPDU2DeviceStatusEnergy", INT, "device", total_wh, scale=0.01),  # tenths of kWh
    Obj(_o("4.3.1.11"), "rPDU2DeviceStatusCommandPending", INT, "device", _device_pending),
    Obj(_o("4.3.1.16"), "rPDU2DeviceStatusApparentPower", INT, "device", total_w, scale=0.1),  # hundredths kVA
    Obj(_o("4.3.1.17"), "rPDU2DeviceStatusPowerFactor", INT, "device", power_factor, scale=100),
    # rPDU2DeviceControlTable
    Obj(_o("4.4.1.1"), "rPDU2DeviceControlIndex", INT, "device", const(1)),
    Obj(_o("4.4.1.2"), "rPDU2DeviceControlModule", INT, "device", const(1)),
    Obj(_o("4.4.1.3"), "rPDU2DeviceControlName", STR, "device", pdu_name),
    Obj(_o("4.4.1.4"), "rPDU2DeviceControlCommand", INT, "device", _device_command,
        control=EnumControl(DEVICE_COMMANDS, all_outlets=True)),
    Obj(_o("5"), "rPDU2PhaseTableSize", INT, "scalar", const(1)),
    # rPDU2PhaseStatusTable (single-phase unit)
    Obj(_o("6.3.1.1"), "rPDU2PhaseStatusIndex", INT, "phase", const(1)),
    Obj(_o("6.3.1.2"), "rPDU2PhaseStatusModule", INT, "phase", const(1)),
    Obj(_o("6.3.1.3"), "rPDU2PhaseStatusNumber", INT, "phase", const(1)),
    Obj(_o("6.3.1.4"), "rPDU2PhaseStatusLoadState", INT, "phase", load_state(1, 2, 3, 4)),
    Obj(_o("6.3.1.5"), "rPDU2PhaseStatusCurrent", INT, "phase", total_a, scale=10),  # tenths of A
    Obj(_o("6.3.1.6"), "rPDU2PhaseStatusVoltage", INT, "phase", volts, scale=1),
    Obj(_o("6.3.1.7"), "rPDU2PhaseStatusPower", INT, "phase", total_w, scale=0.1),  # hundredths of kW
    Obj(_o("6.3.1.8"), "rPDU2PhaseStatusApparentPower", INT, "phase", total_w, scale=0.1),
    Obj(_o("6.3.1.9"), "rPDU2PhaseStatusPowerFactor", INT, "phase", power_factor, scale=100),
    Obj(_o("7"), "rPDU2BankTableSize", INT, "scalar", const(0)),
    Obj(_o("9.1"), "rPDU2OutletSwitchedTableSize", INT, "scalar", lambda s, r: len(s.pdu.outlets)),
    # rPDU2OutletSwitchedConfigTable
    Obj(_o("9.2.1.1.1"), "rPDU2OutletSwitchedConfigIndex", INT, "outlet", outlet_number),
    Obj(_o("9.2.1.1.2"), "rPDU2OutletSwitchedConfigModule", INT, "outlet", const(1)),
    Obj(_o("9.2.1.1.3"), "rPDU2OutletSwitchedConfigName", STR, "outlet", outlet_name, control=NameControl(32)),
    Obj(_o("9.2.1.1.4"), "rPDU2OutletSwitchedConfigNumber", INT, "outlet", outlet_number),
    Obj(_o("9.2.1.1.5"), "rPDU2OutletSwitchedConfigPowerOnTime", INT, "outlet", const(int(DELAYED_S))),
    Obj(_o("9.2.1.1.6"), "rPDU2OutletSwitchedConfigPowerOffTime", INT, "outlet", const(int(DELAYED_S))),
    Obj(_o("9.2.1.1.7"), "rPDU2OutletSwitchedConfigRebootDuration", INT, "outlet", lambda s, r: int(s.reboot_s)),
    # rPDU2OutletSwitchedStatusTable
    Obj(_o("9.2.3.1.1"), "rPDU2OutletSwitchedStatusIndex", INT, "outlet", outlet_number),
    Obj(_o("9.2.3.1.2"), "rPDU2OutletSwitchedStatusModule", INT, "outlet", const(1)),
    Obj(_o("9.2.3.1.3"), "rPDU2OutletSwitchedStatusName", STR, "outlet", outlet_name),
    Obj(_o("9.2.3.1.4"), "rPDU2OutletSwitchedStatusNumber", INT, "outlet", outlet_number),
    Obj(_o("9.2.3.1.5"), "rPDU2OutletSwitchedStatusState", INT, "outlet", when_on(2, 1)),  # off 1, on 2
    Obj(_o("9.2.3.1.6"), "rPDU2OutletSwitchedStatusCommandPending", INT, "outlet", when_pending(1, 2)),
    # rPDU2OutletSwitchedControlTable
    Obj(_o("9.2.4.1.1"), "rPDU2OutletSwitchedControlIndex", INT, "outlet", outlet_number),
    Obj(_o("9.2.4.1.2"), "rPDU2OutletSwitchedControlModule", INT, "outlet", const(1)),
    Obj(_o("9.2.4.1.3"), "rPDU2OutletSwitchedControlName", STR, "outlet", outlet_name),
    Obj(_o("9.2.4.1.4"), "rPDU2OutletSwitchedControlNumber", INT, "outlet", outlet_number),
    Obj(_o("9.2.4.1.5"), "rPDU2OutletSwitchedControlCommand", INT, "outlet", when_on(1, 2),
        control=EnumControl(OUTLET_COMMANDS)),
    Obj(_o("9.3"), "rPDU2OutletMeteredTableSize", INT, "scalar", lambda s, r: len(s.pdu.outlets)),
    # rPDU2OutletMeteredStatusTable
    Obj(_o("9.4.3.1.1"), "rPDU2OutletMeteredStatusIndex", INT, "outlet", outlet_number),
    Obj(_o("9.4.3.1.2"), "rPDU2OutletMeteredStatusModule", INT, "outlet", const(1)),
    Obj(_o("9.4.3.1.3"), "rPDU2OutletMeteredStatusName", STR, "outlet", outlet_name),
    Obj(_o("9.4.3.1.4"), "rPDU2OutletMeteredStatusNumber", INT, "outlet", outlet_number),
    Obj(_o("9.4.3.1.5"), "rPDU2OutletMeteredStatusState", INT, "outlet", const(2)),  # normal
    Obj(_o("9.4.3.1.6"), "rPDU2OutletMeteredStatusCurrent", INT, "outlet", outlet_a, scale=10),  # tenths of A
    Obj(_o("9.4.3.1.7"), "rPDU2OutletMeteredStatusPower", INT, "outlet", outlet_w, scale=1),  # W
    Obj(_o("9.4.3.1.11"), "rPDU2OutletMeteredStatusEnergy", INT, "outlet", outlet_wh, scale=0.01),  # tenths kWh
)

FAMILY = Family(
    name="apc_rpdu2",
    sys_object_id=SYS_OBJECT_ID,
    sys_descr=sys_descr,
    objects=OBJECTS,
    rows={"scalar": SCALAR, "device": fixed_rows(1), "phase": fixed_rows(1), "outlet": outlet_rows(())},
)
