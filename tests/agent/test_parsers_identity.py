"""Identity replies that give the registry its key: LuxOS `config` and Whatsminer `get_miner_info`."""

from __future__ import annotations

from agent.drivers import parsers


def test_luxos_config_serial_and_mac() -> None:
    reply = {"STATUS": [{"STATUS": "S", "Code": 33}],
             "CONFIG": [{"MACAddr": "02:BC:A1:00:11:22 ", "SerialNumber": " JYZZ0001BJ0002 ", "Profile": "default"}]}
    assert parsers.luxos_serial(reply) == "JYZZ0001BJ0002"
    assert parsers.luxos_mac(reply) == "02:bc:a1:00:11:22"
    assert parsers.luxos_serial({"CONFIG": [{"SerialNumber": ""}]}) is None
    assert parsers.luxos_serial({}) is None


def test_whatsminer_miner_info() -> None:
    reply = {"STATUS": "S", "When": 1700000000, "Code": 131,
             "Msg": {"ip": "10.0.0.5", "mac": "C6:07:10:AA:BB:CC", "minersn": "HTM3ABCDR40EF012345"}}
    assert parsers.whatsminer_miner_info(reply) == ("HTM3ABCDR40EF012345", "c6:07:10:aa:bb:cc")
    # an error reply (old firmware without the command) gives nothing rather than failing the read
    assert parsers.whatsminer_miner_info({"STATUS": "E", "Code": 14, "Msg": "invalid cmd"}) == (None, None)
