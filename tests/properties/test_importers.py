"""Importers refuse garbage with a line number (hypothesis, derandomized): the money importers raise one
`ImportRefused` naming the file and the line (0 only for what concerns the whole file), the planner's CSV parsers
a `PlannerInputError` whose issues name `line N`, the registry's CSV import a per-line report; never another
exception, never a silent acceptance of a line that is not in the layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.planner.formats import parse_results, parse_usd
from money.errors import ImportRefused
from money.importers import KINDS, parse
from planner.errors import PlannerInputError
from serverkit.errors import InvalidInput

PROPERTY = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
cells = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
garbage_lines = st.lists(st.lists(cells, min_size=1, max_size=6).map(",".join), min_size=1, max_size=6)


@st.composite
def files(draw: st.DrawFn) -> bytes:
    """A header that may be right, then lines of anything (bytes included)."""
    header = draw(st.sampled_from(["", "day,kzt_per_usd,source", "zone,hour,mwh,price_kzt_per_mwh",
                                   "serial,owner_bin,dpc", "date,asset,price"]))  # fmt: skip
    body = "\n".join([header, *draw(garbage_lines)]).encode()
    return body + draw(st.binary(max_size=20)) if draw(st.booleans()) else body


@PROPERTY
@given(st.sampled_from(sorted(KINDS)), files())
def test_money_importers_refuse_with_a_line(kind: str, data: bytes) -> None:
    try:
        parse(kind, "garbage.csv", data)
    except ImportRefused as refused:
        assert refused.file == "garbage.csv" and refused.line >= 0 and refused.reason
        assert refused.line <= data.count(b"\n") + 1


@PROPERTY
@given(files())
def test_planner_csvs_refuse_with_a_line(data: bytes) -> None:
    for parser in (parse_usd, parse_results):
        try:
            parser(data)
        except PlannerInputError as refused:
            assert refused.issues and all(i.field and i.reason for i in refused.issues)
            lines = [i.field for i in refused.issues if i.field.startswith("line ")]
            assert all(1 <= int(f.split()[1]) <= data.count(b"\n") + 1 for f in lines), lines


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.contract.apps import registry_app
    from tests.contract.seed import seed_registry

    with registry_app(Path(tmp_path_factory.mktemp("props"))) as (_, service):
        seed_registry(service)
        yield service


@PROPERTY
@given(files())
def test_the_registry_import_reports_each_bad_line(registry, data: bytes) -> None:  # type: ignore[no-untyped-def]
    from registry.importer import import_csv

    text = data.decode("utf-8", errors="replace")
    try:
        report = import_csv(registry, text, "prop", dry_run=True)
    except InvalidInput as refused:  # the header: the whole file
        assert refused.field == "file"
        return
    for row in report.rows:
        assert row.line >= 2
        if row.action == "error":
            assert row.errors, row
    assert not report.applied
