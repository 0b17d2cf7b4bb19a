"""The one exception tree of Kuat's services, and its mapping to HTTP (done once, in `install_error_handlers`).

Services raise these on purpose; routes never build HTTP errors for domain outcomes themselves. A built-in
exception (KeyError, ValueError) is never a domain signal: code that finds "no such site" raises `NotFound`, so a
real bug (a KeyError from a typo) stays a 500 with a traceback instead of passing for "not found".

    KuatError                      (500: a domain error nobody mapped more precisely)
    ├── InvalidInput(field, reason)   422  bad value of a named field; body like FastAPI's own validation errors
    ├── NotFound(entity, key)         404
    ├── Conflict(reason)              409  the request is valid but clashes with the current state
    ├── Unauthenticated(reason)       401  no key, or a key nobody issued (WWW-Authenticate: Bearer)
    ├── PermissionDenied(reason)      403  a valid key whose role or scope does not allow this
    ├── RateLimited(retry_after_s)    429
    └── Unavailable(what, reason)     503  a dependency (database, remote registry) is down; try again later

A database that cannot be reached (serverkit.db.unavailable: PostgreSQL restarting, a cut connection) is answered
as `Unavailable` (503, Retry-After), logged once per burst; any other database error stays a 500 with its traceback.

`install_error_handlers` also documents these answers in the app's OpenAPI (every operation lists 400, 401, 403,
404, 409, 415, 422, 429 and 503 with the one `ErrorOut` body), so a client, and the schema fuzz tests, know every answer
an operation can give.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError

from serverkit.db import unavailable

log = logging.getLogger(__name__)

DB_RETRY_AFTER_S = 5
DB_LOG_EVERY_S = 60.0


class KuatError(Exception):
    """Base of every error a Kuat service raises on purpose."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR

    def body(self) -> dict[str, Any]:
        return {"detail": str(self)}

    def headers(self) -> dict[str, str] | None:
        return None


class InvalidInput(KuatError):
    """Bad input: names the field (dotted path) and the reason (bad BIN, unknown licensee, duplicate serial...)."""

    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT

    def __init__(self, field: str, reason: str, location: str = "body") -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.location = location

    def body(self) -> dict[str, Any]:
        loc = [self.location, *self.field.split(".")]
        return {"detail": [{"loc": loc, "msg": self.reason, "type": "value_error"}]}


class NotFound(KuatError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, entity: str, key: object) -> None:
        super().__init__(f"{entity} {key!r} not found")
        self.entity = entity
        self.key = key


class Conflict(KuatError):
    status_code = status.HTTP_409_CONFLICT


class Unauthenticated(KuatError):
    status_code = status.HTTP_401_UNAUTHORIZED

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


class PermissionDenied(KuatError):
    status_code = status.HTTP_403_FORBIDDEN


class RateLimited(KuatError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, retry_after_s: float, reason: str = "too many failed attempts") -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class Unavailable(KuatError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what} unavailable: {reason}")
        self.what = what
        self.reason = reason


async def _respond(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KuatError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())


_db_said_at = -math.inf


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database out: 503 with Retry-After (nothing was accepted; the client sends again). Anything else a
    database raises is a bug or a constraint nobody mapped: re-raised, a 500 with its traceback."""
    global _db_said_at
    if not unavailable(exc):
        raise exc
    if time.monotonic() - _db_said_at >= DB_LOG_EVERY_S:
        _db_said_at = time.monotonic()
        log.warning("API: database unavailable (%s %s answered 503): %s", request.method, request.url.path,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    body = Unavailable("database", "cannot be reached; try again shortly")
    return JSONResponse(body.body(), status_code=body.status_code, headers={"Retry-After": str(DB_RETRY_AFTER_S)})


class ErrorItem(BaseModel):
    """One bad field: where (`loc`, a path like FastAPI's or a name such as "line 4") and why."""

    model_config = ConfigDict(extra="allow")  # importers add the file and the line number

    loc: list[str | int] | str
    msg: str
    type: str | None = None


class ErrorOut(BaseModel):
    """The body of every refusal: a sentence, or one item per bad field (a 422 names every bad field at once)."""

    detail: str | list[ErrorItem]


ERROR_ANSWERS = {
    "400": "the request is not well-formed (a body that is not JSON, say)",
    "401": "no API key, or one nobody issued (or revoked)",
    "403": "the key's role or scope does not allow this",
    "404": "no such thing",
    "409": "valid, but it clashes with the current state",
    "415": "the body is not of a media type this operation takes",
    "422": "a bad value: every bad field is named",
    "429": "too many failed attempts from this client: wait Retry-After seconds",
    "503": "a part this needs is disabled or down",
}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error answers (one `ErrorOut` schema) to every operation of an OpenAPI document, in place."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    body = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(body.pop("$defs", {}))
    components["ErrorOut"] = body
    ref = {"$ref": "#/components/schemas/ErrorOut"}
    for methods in schema.get("paths", {}).values():
        for operation in methods.values():
            answers = operation.setdefault("responses", {})
            for code, why in ERROR_ANSWERS.items():
                answers[code] = {"description": why, "content": {"application/json": {"schema": ref}}}
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return schema


def _openapi_with_errors(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None or not app.openapi_schema.get("x-kuat-errors"):
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes, openapi_version=app.openapi_version)  # fmt: skip
            app.openapi_schema = {**document_errors(schema), "x-kuat-errors": True}
        return app.openapi_schema

    return openapi


def install_error_handlers(app: FastAPI) -> None:
    """Map the whole tree to HTTP on `app` (idempotent: FastAPI keeps one handler per class), and document it."""
    app.add_exception_handler(KuatError, _respond)
    app.add_exception_handler(DBAPIError, _database_error)
    app.openapi = _openapi_with_errors(app)  # type: ignore[method-assign]
