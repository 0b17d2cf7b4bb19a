"""Wire messages round-trip (hypothesis builds them from their own models), and every device-reply path turns
arbitrary bytes, or arbitrary JSON, into a reading or a `DeviceError`, never another exception: the cgminer-family
RPC replies (decoded by `loads_tolerant`, checked, then parsed by every family's parser) and SNMP messages (BER)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.drivers import parsers
from agent.drivers.parsers import Reading
from agent.errors import DeviceError
from agent.firmware import FAMILIES, parse_version
from agent.firmware.antminer import parse_bmminer_stats
from agent.firmware.whatsminer import parse_whatsminer_devs, parse_whatsminer_summary
from agent.transport import ber
from agent.transport.cgminer import check_reply
from agent.transport.jsonfix import BrokenReply, loads_tolerant
from kuat.wire import v1

PROPERTY = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | finite | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
COMMANDS = ["summary", "stats", "pools", "version", "devs", "devdetails", "config", "profiles", "estats", "edevs"]


def _command(fields: dict[str, Any]) -> v1.Command | None:
    try:
        return v1.Command(**fields)
    except ValueError:  # a combination the model refuses (set_power_target without a device...): not a message
        return None


def commands() -> st.SearchStrategy[v1.Command]:
    fields = st.fixed_dictionaries({
        "id": st.text(min_size=1, max_size=20), "kind": st.sampled_from(list(v1.CommandKind)),
        "device_id": st.none() | st.text(min_size=1, max_size=20), "power_w": st.none() | st.floats(0, 6000),
        "outlet": st.none() | st.integers(1, 48), "lease_s": st.none() | st.floats(1, 600),
        "setpoints": st.lists(st.builds(v1.Setpoint, power_w=st.floats(0, 6000)), max_size=3),
    })  # fmt: skip
    return fields.map(_command).filter(lambda c: c is not None)  # type: ignore[return-value]


@PROPERTY
@given(st.one_of(*(st.builds(cls) for cls in (v1.TelemetryBatch, v1.GatewayState, v1.Ack)), commands(),
                 st.builds(v1.GridSignal, target_pct=st.floats(0, 100), target_mw=st.none()),
                 st.builds(v1.GridSignal, target_pct=st.none(), target_mw=st.floats(0, 1e4))))
def test_wire_messages_round_trip(message: Any) -> None:
    text = message.model_dump_json(by_alias=True)
    again = type(message).model_validate_json(text)
    assert again == message
    assert json.loads(again.model_dump_json(by_alias=True)) == json.loads(text)


def decode(command: str, raw: bytes) -> dict[str, Any]:
    """What the RPC client does with a reply (agent/transport/cgminer.py RpcClient.command)."""
    try:
        return check_reply(command, loads_tolerant(raw))
    except BrokenReply as exc:
        raise DeviceError(str(exc)) from exc


def parse_all(replies: dict[str, Any]) -> None:
    """Every firmware family's parser (agent.firmware.FAMILIES, whatever families exist), and the per-reply ones."""
    assert len(FAMILIES) >= 5
    for family in FAMILIES.values():
        assert isinstance(family.parse(replies), Reading), family
    for one in (parse_version, parse_bmminer_stats, parse_whatsminer_summary):
        assert isinstance(one(replies.get("summary")), Reading)
    parsers.parse_pools(replies.get("pools"))
    parse_whatsminer_devs(replies.get("devs"))


@PROPERTY
@given(st.sampled_from(COMMANDS), st.binary(max_size=400))
def test_arbitrary_bytes_are_a_reading_or_a_device_error(command: str, raw: bytes) -> None:
    try:
        reply = decode(command, raw)
    except DeviceError:
        return
    try:
        parse_all({command: reply, "summary": reply, "pools": reply, "devs": reply})
    except DeviceError:
        pass


@PROPERTY
@given(st.dictionaries(st.sampled_from(COMMANDS), json_values, max_size=4), st.sampled_from(COMMANDS))
def test_arbitrary_json_replies_are_a_reading_or_a_device_error(replies: dict[str, Any], command: str) -> None:
    shaped = {k: {"STATUS": [{"STATUS": "S"}], k.upper(): [v] if isinstance(v, dict) else v}
              for k, v in replies.items()}  # fmt: skip
    for candidate in (replies, shaped):
        try:
            parse_all({k: v for k, v in candidate.items() if isinstance(v, dict)})
        except DeviceError:
            pass


@PROPERTY
@given(st.binary(max_size=300))
def test_arbitrary_snmp_bytes_are_a_message_or_a_device_error(raw: bytes) -> None:
    try:
        ber.read_v2c(raw)
    except DeviceError:
        pass
    try:
        ber.message_id(raw)
    except DeviceError:
        pass
