"""The National Bank of Kazakhstan's daily rates (`get_rates.cfm?fdate=DD.MM.YYYY`): `<rates>` with one
`<date>DD.MM.YYYY</date>` and one `<item>` per currency (`<title>` ISO code, `<description>` tenge per `<quant>`
units, `<quant>`, optional `<index>`, `<change>`, `<fullname>`); an optional `<generator>/<title>/<link>/
<description>/<copyright>` header. Samples: ../shared/fixtures/valuation/nbk/.

Parsed with expat, which gives line numbers; a DOCTYPE or an entity declaration is refused (no entity expansion,
no external resources). Which day a feed date stands for is decided by the valuation's conventions, not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from xml.parsers import expat

from money.errors import ImportRefused
from money.importers.common import Records
from money.market import FxRate
from money.numbers import dec

ITEM_FIELDS = ("fullname", "title", "description", "quant", "index", "change")
HEADER_FIELDS = ("generator", "title", "link", "description", "copyright", "date")


@dataclass
class _Item:
    line: int
    fields: dict[str, str] = field(default_factory=dict)


class _Reader:
    def __init__(self, name: str) -> None:
        self.name = name
        self.parser = expat.ParserCreate()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.date_text: tuple[str, int] | None = None
        self.items: list[_Item] = []
        p = self.parser
        p.StartElementHandler = self.start
        p.EndElementHandler = self.end
        p.CharacterDataHandler = self.text.append
        p.StartDoctypeDeclHandler = self.refuse_dtd
        p.EntityDeclHandler = self.refuse_entity

    def refuse(self, reason: str) -> ImportRefused:
        return ImportRefused(self.name, self.parser.CurrentLineNumber, reason)

    def refuse_dtd(self, *args: object) -> None:
        raise self.refuse("a DOCTYPE is not accepted in a rates file")

    def refuse_entity(self, *args: object) -> None:
        raise self.refuse("entity declarations are not accepted")

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        depth = len(self.stack)
        if depth == 0 and tag != "rates":
            raise self.refuse(f"the root element is <{tag}>, expected <rates>")
        if depth == 1 and tag == "item":
            self.items.append(_Item(self.parser.CurrentLineNumber))
        elif depth == 1 and tag not in HEADER_FIELDS:
            raise self.refuse(f"unexpected <{tag}> in <rates>")
        elif depth == 2:
            if self.stack[-1] != "item" or tag not in ITEM_FIELDS:
                raise self.refuse(f"unexpected <{tag}> in <{self.stack[-1]}>")
        elif depth > 2:
            raise self.refuse(f"unexpected <{tag}> nested in <{self.stack[-1]}>")
        self.stack.append(tag)
        self.text.clear()

    def end(self, tag: str) -> None:
        self.stack.pop()
        content = "".join(self.text).strip()
        self.text.clear()
        if len(self.stack) == 1 and tag == "date":
            self.date_text = (content, self.parser.CurrentLineNumber)
        elif len(self.stack) == 2 and self.stack[-1] == "item":
            item = self.items[-1]
            if tag in item.fields:
                raise self.refuse(f"<{tag}> twice in one <item>")
            item.fields[tag] = content


def parse_nbk(name: str, data: bytes) -> list[FxRate]:
    if not data.strip():
        raise ImportRefused(name, 0, "the file is empty")
    reader = _Reader(name)
    try:
        reader.parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise ImportRefused(name, exc.lineno, f"bad XML: {expat.errors.messages[exc.code]}") from None
    if reader.date_text is None:
        raise ImportRefused(name, 0, "no <date> in <rates>")
    raw, line = reader.date_text
    try:
        day = datetime.strptime(raw, "%d.%m.%Y").date()
    except ValueError:
        raise ImportRefused(name, line, f"<date> {raw!r} is not DD.MM.YYYY") from None
    if not reader.items:
        raise ImportRefused(name, 0, "no <item> in <rates>")
    return Records([(item.line, _rate(name, day, item)) for item in _unique(name, reader.items)])


def _unique(name: str, items: list[_Item]) -> list[_Item]:
    seen: dict[str, int] = {}
    for item in items:
        code = item.fields.get("title", "")
        if code in seen:
            raise ImportRefused(name, item.line, f"currency {code} twice (first at line {seen[code]})")
        seen[code] = item.line
    return items


def _rate(name: str, day: date, item: _Item) -> FxRate:
    f = item.fields

    def refuse(reason: str) -> ImportRefused:
        return ImportRefused(name, item.line, reason)

    code = f.get("title", "")
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise refuse(f"<title> {code!r} is not an ISO currency code")
    desc = f.get("description", "")
    if not re.fullmatch(r"\d+(\.\d+)?", desc):
        raise refuse(f"{code}: <description> {desc!r} is not a rate (tenge per quant units, decimal point)")
    quant = f.get("quant", "")
    if not re.fullmatch(r"[1-9]\d*", quant):
        raise refuse(f"{code}: <quant> {quant!r} is not a positive whole number")
    rate = dec(desc)
    if rate == 0:
        raise refuse(f"{code}: a rate of 0")
    return FxRate(code, day, rate, int(quant))


def fdate(day: date) -> str:
    """The feed's query parameter for `day`."""
    return day.strftime("%d.%m.%Y")
