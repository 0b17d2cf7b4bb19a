"""The family tables as data: well-formed layouts and the real control OIDs/enums of DEVICES.md (no network)."""

from __future__ import annotations

import pytest

from sim.pdus.families import FAMILIES, layout_for
from sim.pdus.mib import EnumControl, Layout, NameControl, oid

# (family, control column, index of outlet 5, {value: action}) from ../shared/domain/DEVICES.md
CONTROLS = [
    ("apc_rpdu2", "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5", "5",
     {1: "on", 2: "off", 3: "reboot"}),  # immediateOn 1, immediateOff 2, immediateReboot 3
    ("raritan_px2", "1.3.6.1.4.1.13742.6.4.1.2.1.2", "1.5", {0: "off", 1: "on", 2: "reboot"}),  # off 0 on 1 cycle 2
    ("sentry4", "1.3.6.1.4.1.1718.4.1.8.5.1.2", "1.1.5", {1: "on", 2: "off", 3: "reboot"}),  # on 1 off 2 reboot 3
]
SYS_OBJECT_IDS = {"apc_rpdu2": "1.3.6.1.4.1.318.1.3.4.6", "raritan_px2": "1.3.6.1.4.1.13742.6",
                  "sentry4": "1.3.6.1.4.1.1718.4"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("outlets", [1, 12, 24])
def test_layout_is_sorted_unique_and_walkable(family: str, outlets: int) -> None:
    layout = layout_for(family, outlets)
    assert layout.oids == sorted(set(layout.oids))
    first = layout.next_after((1, 3, 6))
    assert first is not None and first.oid == layout.oids[0]
    assert layout.next_after(layout.oids[-1]) is None
    for a, b in zip(layout.oids, layout.oids[1:], strict=False):
        nxt = layout.next_after(a)
        assert nxt is not None and nxt.oid == b


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_object_names_are_unique_and_system_group_is_there(family: str) -> None:
    fam = FAMILIES[family]
    names = [o.name for o in fam.objects]
    assert len(names) == len(set(names))
    assert fam.sys_object_id == oid(SYS_OBJECT_IDS[family])
    assert layout_for(family, 4).exact(oid("1.3.6.1.2.1.1.2.0")) is not None


@pytest.mark.parametrize(("family", "column", "index", "actions"), CONTROLS)
def test_real_control_oid_and_enum(family: str, column: str, index: str, actions: dict[int, str]) -> None:
    inst = layout_for(family, 8).exact(oid(f"{column}.{index}"))
    assert inst is not None and inst.row.outlet == 5
    control = inst.obj.control
    assert isinstance(control, EnumControl) and not control.all_outlets
    assert {v: control.commands[v].action for v in actions} == actions
    assert all(control.commands[v].delay_s == 0 for v in actions)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_only_controls_and_names_are_writable(family: str) -> None:
    writable = {i.obj.name for i in layout_for(family, 2).instances if i.obj.control is not None}
    assert writable, "a switched PDU has writable control objects"
    for inst in layout_for(family, 2).instances:
        if isinstance(inst.obj.control, NameControl):
            assert "Name" in inst.obj.name
        elif inst.obj.control is not None:
            assert any(w in inst.obj.name for w in ("Command", "switchingOperation", "ControlAction"))


def test_missing_instance_of_a_known_column_is_recognised() -> None:
    layout: Layout = layout_for("sentry4", 2)
    assert layout.has_object(oid("1.3.6.1.4.1.1718.4.1.8.3.1.7.1.1.9"))  # st4OutletActivePower, outlet 9
    assert not layout.has_object(oid("1.3.6.1.4.1.9999.1"))


def test_unknown_family_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no simulated PDU family 'eaton'"):
        layout_for("eaton", 4)
