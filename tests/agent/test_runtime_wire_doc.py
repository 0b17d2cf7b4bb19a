"""docs/wire-protocol.md stays true: every JSON example in it is a valid message of the schema it names, and the
topic table matches kuat.wire.v1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from kuat.wire import v1

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-protocol.md"
MODELS: dict[str, type[BaseModel]] = {
    "kuat.telemetry/1": v1.TelemetryBatch,
    "kuat.state/1": v1.GatewayState,
    "kuat.command/1": v1.Command,
    "kuat.ack/1": v1.Ack,
    "kuat.grid/1": v1.GridSignal,
}
EXAMPLES = re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_an_example_of_every_message() -> None:
    assert {json.loads(e)["schema"] for e in EXAMPLES} == set(MODELS)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: str(json.loads(e)["schema"]))
def test_every_example_is_a_valid_message(example: str) -> None:
    data = json.loads(example)
    message = MODELS[data["schema"]].model_validate(data)
    again = json.loads(v1.dumps(message))
    assert set(data) <= set(again) | {"ts"}  # nothing in the example that the model would drop


def test_the_topic_table_matches_the_code() -> None:
    text = DOC.read_text()
    for kind in ("telemetry", "state", "cmd", "ack"):
        assert f"`{v1.topic('{site}', '{gateway}', kind)}`" in text
    assert f"`{v1.grid_signal_topic('{site}')}`" in text
