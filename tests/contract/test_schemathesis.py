"""Schemathesis over every operation of both apps, in-process (ASGI), with an operator key: data that fits the
schema and data that does not. Every operation must: never answer 5xx (nor break off a stream), answer only status
codes and content types it documents, with bodies that match their documented schema, and refuse a request without
a key (or with a wrong one) when it declares authentication.

The run is bounded and repeatable: hypothesis is derandomized (the same cases every run, so CI is stable) and each
operation gets a fixed number of examples per mode (KUAT_FUZZ_EXAMPLES, default 6; both apps take well under the
three minutes the suite allows on a 2-core machine). A failure names the operation, the mode and schemathesis's
reproduction (a curl line).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks as core_checks
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from registry.auth import guard
from serverkit.ratelimit import FailureLimiter
from tests.contract.apps import KEYS, controller_app, registry_app
from tests.contract.seed import seed_controller, seed_registry

EXAMPLES = int(os.environ.get("KUAT_FUZZ_EXAMPLES", "6"))
CHECKS = [
    core_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.ignored_auth,
]
OPERATOR = {"X-API-Key": KEYS["operator"]}


def fuzz_operation(operation: Any, mode: GenerationMode) -> None:
    """`EXAMPLES` derandomized cases of one operation in one mode, each sent and checked."""

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=False,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(operation.as_strategy(mode))
    def run(case: Any) -> None:
        case.call_and_validate(headers=OPERATOR, checks=CHECKS)

    run()


def fuzz(app: FastAPI, skip: Callable[[str], bool] = lambda _label: False) -> tuple[int, dict[str, str]]:
    """Every operation of `app`'s OpenAPI in both modes; the count walked and the failures by operation."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    walked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if skip(operation.label):
            continue
        walked += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(operation, mode)
            except Unsatisfiable:
                continue  # negative mode of an operation with nothing to make invalid (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup is an exception group
                failures[f"{operation.label} [{mode.value}]"] = "\n    ".join(str(exc).splitlines()[:14])
    return walked, failures


def unlimited(app: FastAPI) -> None:
    """The fuzzer sends wrong keys on purpose (to see auth enforced): the failure limiter must not end the walk."""
    guard.realm_of(app).limiter = FailureLimiter(limit=10**9)


def report(failures: dict[str, str]) -> str:
    return f"{len(failures)} failing operation(s):\n" + "\n".join(f"{k}\n    {v}" for k, v in sorted(failures.items()))


def test_controller_with_its_registry_under_fuzz(tmp_path: Path) -> None:
    with controller_app(tmp_path) as (app, services):
        seed_controller(services)
        unlimited(app)
        walked, failures = fuzz(app)
    assert walked > 80, f"only {walked} operations walked"
    assert not failures, report(failures)


def test_standalone_registry_under_fuzz(tmp_path: Path) -> None:
    with registry_app(tmp_path) as (app, service):
        seed_registry(service)
        unlimited(app)
        walked, failures = fuzz(app)
    assert walked > 25, f"only {walked} operations walked"
    assert not failures, report(failures)


@pytest.mark.parametrize("examples", [EXAMPLES])
def test_the_budget_is_bounded(examples: int) -> None:
    assert 1 <= examples <= 50, "KUAT_FUZZ_EXAMPLES out of the range the three-minute budget allows"


def test_the_fuzzer_catches_a_5xx_and_auth_declared_but_not_enforced() -> None:
    """The walk itself can fail: a toy app with one crashing route and one whose guard is declared, not enforced."""
    from fastapi import Security

    from serverkit.auth import API_KEY_HEADER
    from serverkit.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/crash/{n}")
    def crash(n: int) -> dict[str, int]:
        return {"n": 1 // (n - n)}

    @app.get("/open")
    def open_door(_key: str | None = Security(API_KEY_HEADER)) -> dict[str, int]:
        return {"n": 1}

    walked, failures = fuzz(app)
    assert walked == 2
    assert any(k.startswith("GET /crash/{n}") and "division" in v
               for k, v in failures.items()), failures
    assert any(k.startswith("GET /open") and "auth" in v.lower() for k, v in failures.items()), failures
