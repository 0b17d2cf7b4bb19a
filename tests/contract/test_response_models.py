"""Every route documents what it answers: a typed response model (pydantic models, or lists of them), or, for a
file or a stream, the media types it sends in `responses=`; a 204 says it has no body. The routes come from the
apps themselves, so a new untyped route fails here by name.

The standalone registry's routes (the national registry's among them) are held to the same rule.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from tests.contract.apps import Operation, controller_app, operations, registry_app


def is_typed(annotation: Any) -> bool:
    """A pydantic model, or a list / optional of one (a bare dict, Any or dict[str, Any] is not typed)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union) or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(is_typed(a) for a in args)
    return False


def declared_media(op: Operation) -> list[str]:
    ok = op.route.responses.get(200) or op.route.responses.get("200") or {}
    return list(ok.get("content", {}))


def problem(op: Operation) -> str | None:
    """Why `op` does not document its answer, or None."""
    if op.route.status_code == 204:
        return None
    if op.route.response_model is not None:
        return None if is_typed(op.route.response_model) else f"untyped response model {op.route.response_model}"
    if declared_media(op):
        return None
    return "no response model and no media types in responses="


def documented(app: FastAPI) -> list[Operation]:
    return [op for op in operations(app) if op.route.include_in_schema]


def test_every_controller_route_has_a_typed_response(tmp_path: Path) -> None:
    with controller_app(tmp_path) as (app, _):
        ops = [op for op in documented(app) if not op.route.endpoint.__module__.startswith("registry.")]
        bad = {op.label: why for op in ops if (why := problem(op))}
    assert len(ops) > 60, "the walk found too few routes: is the route enumeration broken?"
    assert not bad, "\n".join(f"{k}: {v}" for k, v in sorted(bad.items()))


def test_registry_routes_by_the_same_rule(tmp_path: Path) -> None:
    with registry_app(tmp_path) as (app, _):
        ops = documented(app)
        bad = {op.label: why for op in ops if (why := problem(op))}
    assert len(ops) > 25
    assert not bad, "\n".join(f"{k}: {v}" for k, v in sorted(bad.items()))


def test_the_rule_itself_catches_an_untyped_route() -> None:
    app = FastAPI()

    @app.get("/loose")
    def loose() -> dict[str, Any]:
        return {}

    @app.get("/bare")
    def bare() -> None:
        return None

    @app.get("/file", response_model=None, responses={200: {"content": {"text/csv": {}}}})
    def file() -> None:
        return None

    ops = {op.path: op for op in operations(app)}
    assert "untyped" in str(problem(ops["/loose"]))
    assert problem(ops["/bare"]) == "no response model and no media types in responses="
    assert problem(ops["/file"]) is None
    assert is_typed(list[BaseModel]) and not is_typed(dict[str, Any]) and not is_typed(list[dict[str, Any]])
