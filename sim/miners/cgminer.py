"""The cgminer-family RPC framing shared by bmminer, LUXminer and btminer (TCP 4028).

One request per connection: `{"command":"CMD","parameter":"P"}` (or the text form `cmd|param`); the reply is
`{"STATUS":[{...}],"<SECTION>":[...],"id":1}` followed by a NUL byte, then the miner closes the connection.
`summary+pools` asks several commands at once; the reply has one key per command holding a one-element list
with that command's full reply. Each firmware subclasses `CgminerApi` with its own commands and quirks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim.miners.readings import Reading, read
from sim.physics import Fault
from sim.runtime import SimMiner

Reply = dict[str, Any]
Handler = Callable[[SimMiner, Reading, "Request"], Reply]

INVALID_COMMAND = 14
MISSING_COMMAND = 24


@dataclass(slots=True)
class Request:
    command: str
    parameter: str = ""
    body: dict[str, Any] = field(default_factory=dict)  # the decoded JSON object, if the request was JSON
    malformed: bool = False

    @property
    def params(self) -> list[str]:
        return self.parameter.split(",") if self.parameter else []


def parse_request(raw: bytes) -> Request:
    """Decode a request in either form; a body that is neither gives a `malformed` request (answered with an error)."""
    text = raw.decode("utf-8", errors="replace").strip().rstrip("\x00").strip()
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            return Request("", malformed=True)
        if not isinstance(body, dict):
            return Request("", malformed=True)
        param = body.get("parameter", "")
        return Request(str(body.get("command", "")), "" if param is None else str(param), body)
    if not text:
        return Request("", malformed=True)
    cmd, _, param = text.partition("|")
    return Request(cmd.strip(), param.strip())


def request_complete(buf: bytes) -> bool:
    """Has the client sent a whole request? JSON when it parses; the text form as soon as anything arrived."""
    text = buf.strip(b"\x00 \r\n\t")
    if not text:
        return False
    if not text.startswith(b"{"):
        return True
    try:
        json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True


def dumps(obj: Any) -> str:
    """Compact JSON, as the firmware writes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class CgminerApi:
    """A cgminer-style RPC server for one firmware. Subclasses register handlers in `commands`."""

    firmware = "cgminer"
    description = "cgminer 1.0.0"
    multi_command = True

    def __init__(self) -> None:
        self.commands: dict[str, Handler] = {}

    # ------------------------------------------------------------ reply building
    def status(self, r: Reading, code: int, msg: Any, ok: bool = True) -> dict[str, Any]:
        return {"STATUS": "S" if ok else "E", "When": r.when, "Code": code, "Msg": msg,
                "Description": self.description}

    def reply(self, r: Reading, code: int, msg: Any, section: str | None = None,
              items: list[dict[str, Any]] | None = None) -> Reply:
        out: Reply = {"STATUS": [self.status(r, code, msg)]}
        if section is not None:
            out[section] = items or []
        out["id"] = 1
        return out

    def error(self, r: Reading, code: int, msg: str) -> Reply:
        return {"STATUS": [self.status(r, code, msg, ok=False)], "id": 1}

    # ------------------------------------------------------------ dispatch
    def answer(self, miner: SimMiner, raw: bytes) -> bytes:
        """The bytes the firmware sends back for one request (NUL-terminated, quirks applied)."""
        req = parse_request(raw)
        r = read(miner)
        text = self.render(miner, r, req)
        return text.encode("utf-8") + b"\x00"

    def render(self, miner: SimMiner, r: Reading, req: Request) -> str:
        if req.malformed:
            return dumps(self.error(r, MISSING_COMMAND, "Missing JSON 'command'"))
        special = self.special(miner, r, req)
        if special is not None:
            return special
        if "+" in req.command and self.multi_command:
            return self.render_multi(miner, r, req)
        return self.render_one(miner, r, req)

    def special(self, miner: SimMiner, r: Reading, req: Request) -> str | None:
        """Hook for requests outside the cgminer framing (e.g. btminer's encrypted writes)."""
        return None

    def run(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        handler = self.commands.get(req.command)
        if handler is None:
            return self.error(r, INVALID_COMMAND, "Invalid command")
        return handler(miner, r, req)

    def render_one(self, miner: SimMiner, r: Reading, req: Request) -> str:
        reply = self.run(miner, r, req)
        return self.quirks(miner, req.command, reply)

    def render_multi(self, miner: SimMiner, r: Reading, req: Request) -> str:
        out: Reply = {}
        for cmd in req.command.split("+"):
            out[cmd] = [self.run(miner, r, Request(cmd, req.parameter, req.body))]
        out["id"] = 1
        return self.quirks(miner, req.command, out)

    # ------------------------------------------------------------ firmware quirks
    def quirks(self, miner: SimMiner, command: str, reply: Reply) -> str:
        """Serialise `reply`, reproducing this firmware's known breakage when the miner has that fault."""
        if Fault.STRING_NUMBERS in miner.phys.faults:
            reply = self.stringify_numbers(reply)
        text = dumps(reply)
        if Fault.BROKEN_JSON in miner.phys.faults:
            text = self.break_json(command, text)
        return text

    string_number_keys: frozenset[str] = frozenset()

    def stringify_numbers(self, reply: Any) -> Any:
        """Numbers as strings for the keys this firmware is known to quote (S17 Pro: "GHS 5s":"54997.01")."""
        if isinstance(reply, dict):
            return {k: (f"{v:.2f}" if k in self.string_number_keys and isinstance(v, int | float)
                        else self.stringify_numbers(v)) for k, v in reply.items()}
        if isinstance(reply, list):
            return [self.stringify_numbers(v) for v in reply]
        return reply

    def break_json(self, command: str, text: str) -> str:
        return text
