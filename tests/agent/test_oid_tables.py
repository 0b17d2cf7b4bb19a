"""The OID tables (agent/oids/*.toml) load strictly, as snmp_exporter's config loader does: an unknown or misspelt
key, a wrong type, an OID that is not dotted numbers or a state that is not on/off/unknown refuses the file with its
name, the key and the reason."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent.oids import HERE, TableError, load_file, load_tables, parse_table


def shipped(name: str) -> dict[str, Any]:
    return tomllib.loads((HERE / name).read_text())


def test_every_shipped_table_loads() -> None:
    tables = load_tables()
    assert len(tables) == len(list(HERE.glob("*.toml")))
    for table in tables.values():
        assert table.probe and table.sysobjectid, table.family


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["outlets"].update(stat=d["outlets"].pop("state")),
         "vertiv_geist.toml: outlets.stat: unknown key; did you mean 'state'?"),
        (lambda d: d.update(totals=d.pop("total")), "vertiv_geist.toml: totals: unknown key; did you mean 'total'?"),
        (lambda d: d["outlets"]["state"].update(maps=d["outlets"]["state"].pop("map")),
         "vertiv_geist.toml: outlets.state.maps: unknown key; did you mean 'map'?"),
        (lambda d: d["lines"]["power_w"].update(scael=1.0), "vertiv_geist.toml: lines.power_w.scael: unknown key"),
        (lambda d: d["control"].update(reboot=d["control"].pop("cycle")),
         "vertiv_geist.toml: control.reboot: unknown key"),
        (lambda d: d["identity"].update(serail="1.3.6.1.4.1.21239.5.2.1.10"),
         "vertiv_geist.toml: identity.serail: unknown key; did you mean 'serial'?"),
        (lambda d: d["total"]["power_w"].update(oid="1.3.6.1.4.1.21239.5.2.x"),
         "vertiv_geist.toml: total.power_w.oid: '1.3.6.1.4.1.21239.5.2.x' is not a dotted OID"),
        (lambda d: d["outlets"]["state"]["map"].update({"7": "maybe"}),
         "vertiv_geist.toml: outlets.state.map.7: Input should be 'on', 'off' or 'unknown'"),
        (lambda d: d["outlets"]["state"]["map"].update({"on": "on"}),
         "vertiv_geist.toml: outlets.state.map.on: a state map key is the INTEGER the PDU sends"),
        (lambda d: d["control"]["on"].update(value="2"),
         "vertiv_geist.toml: control.on.value: Input should be a valid"),
        (lambda d: d.pop("probe"), "vertiv_geist.toml: probe: required key missing"),
        (lambda d: d.update(sysobjectid=[]), "vertiv_geist.toml: sysobjectid: List should have at least 1 item"),
        (lambda d: d["outlets"].update(key_length=0), "vertiv_geist.toml: outlets.key_length: must be 1 or more"),
    ],
)
def test_a_bad_key_or_value_names_file_key_and_reason(change: Any, message: str) -> None:
    data = shipped("vertiv_geist.toml")
    change(data)
    with pytest.raises(TableError) as caught:
        parse_table(data, "vertiv_geist.toml")
    assert str(caught.value).startswith(message), str(caught.value)


def test_unknown_key_lists_the_known_ones() -> None:
    data = shipped("sentry3.toml")
    data["outlets"]["current"] = data["outlets"].pop("current_a")
    with pytest.raises(TableError, match=r"outlets.current: unknown key; did you mean 'current_a'\? \(known here: "
                                         r"key_length, name, state, current_a, power_w, energy_kwh\)"):
        parse_table(data, "sentry3.toml")


def test_files_that_are_not_toml_or_repeat_a_family_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('family = "x"\nsysobjectid = [1.3.6\n')
    with pytest.raises(TableError, match=r"broken.toml: not valid TOML"):
        load_file(broken)
    good = (HERE / "enlogic.toml").read_text()
    table = tmp_path / "enlogic_copy.toml"
    table.write_text(good.replace("[control]", "[controls]"))
    with pytest.raises(TableError, match=r"enlogic_copy.toml: controls: unknown key; did you mean 'control'\?"):
        load_file(table)
