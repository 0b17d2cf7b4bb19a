"""Identity replies that give the registry its key: LuxOS `config` and Whatsminer `get_miner_info`."""

from __future__ import annotations

from agent.firmware import luxos, whatsminer


def test_luxos_config_serial_and_mac() -> None:
    reply = {"STATUS": [{"STATUS": "S", "Code": 33}],
             "CONFIG": [{"MACAddr": "02:BC:A1:00:11:22 ", "SerialNumber": " JYZZ0001BJ0002 ", "Profile": "default"}]}
    assert luxos.luxos_serial(reply) == "JYZZ0001BJ0002"
    assert luxos.luxos_mac(reply) == "02:bc:a1:00:11:22"
    assert luxos.luxos_serial({"CONFIG": [{"SerialNumber": ""}]}) is None
    assert luxos.luxos_serial({}) is None


def test_whatsminer_miner_info() -> None:
    reply = {"STATUS": "S", "When": 1700000000, "Code": 131,
             "Msg": {"ip": "10.0.0.5", "mac": "C6:07:10:AA:BB:CC", "minersn": "HTM3ABCDR40EF012345"}}
    assert whatsminer.whatsminer_miner_info(reply) == ("HTM3ABCDR40EF012345", "c6:07:10:aa:bb:cc")
    # an error reply (old firmware without the command) gives nothing rather than failing the read
    assert whatsminer.whatsminer_miner_info({"STATUS": "E", "Code": 14, "Msg": "invalid cmd"}) == (None, None)


def test_luxos_profile_watts_narrow_the_power_target_range() -> None:
    """A LuxOS target below its lowest profile is refused (pyasic finds no preset at or below it), so the published
    minimum is the lowest profile's power, not the model's deepest underclock."""
    from agent.drivers.state import capabilities_for

    reply = {"STATUS": [{"STATUS": "S", "Code": 325}],
             "PROFILES": [{"Profile Name": "default", "Watts": 3068}, {"Profile Name": "500MHz", "Watts": "2655"},
                          {"Profile Name": "275MHz", "Watts": 1063.4}, {"Profile Name": "broken", "Watts": None}]}
    assert luxos.luxos_presets(reply) == ["default", "500MHz", "275MHz", "broken"]
    assert luxos.luxos_preset_watts(reply) == [1063.4, 2655.0, 3068.0]
    model_only = capabilities_for("luxos", "S19j Pro")
    narrowed = capabilities_for("luxos", "S19j Pro", preset_watts=luxos.luxos_preset_watts(reply))
    assert model_only.power_min_w is not None and model_only.power_min_w < 1000
    assert (narrowed.power_min_w, narrowed.power_max_w) == (1064, 3068)
    assert capabilities_for("antminer", "S19j Pro", preset_watts=[1063.4]).power_min_w is None  # no target at all
