"""Keys never in URLs, and failed authentication limited: the session cookie (its attributes, signature, expiry,
realm), the dashboard's JS (no `key=` in any URL it builds), and the per-client limiter (429 with Retry-After after
N failures in a window; one log line when a burst starts and one summary when it ends)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.dashboard.api import STATIC_DIR
from registry.auth import guard
from serverkit.auth import COOKIE, Principal, Scope
from serverkit.ratelimit import FailureLimiter
from serverkit.session import SessionSigner
from tests.contract.apps import KEYS, controller_app


def test_the_dashboard_js_puts_no_key_in_any_url() -> None:
    for path in STATIC_DIR.glob("*.js"):
        text = re.sub(r"(?m)^\s*//.*$", "", path.read_text())  # whole-line comments may describe the #key= hand-over
        assert not re.search(r"[?&]key=", text), f"{path.name} builds a URL with the key in it"
        assert "encodeURIComponent(key())" not in text, path.name
    app_js = (STATIC_DIR / "app.js").read_text()
    assert 'new EventSource("/api/v1/dashboard/stream")' in app_js and "/api/v1/session" in app_js


def test_a_session_cookie_opens_the_stream_and_the_download_only(tmp_path: Path) -> None:
    with controller_app(tmp_path) as (app, _), TestClient(app) as client:
        assert client.get("/api/v1/dashboard/stream").status_code == 401
        assert client.post("/api/v1/session").status_code == 401  # the key goes in a header, nowhere else
        made = client.post("/api/v1/session", headers={"X-API-Key": KEYS["regulator"]})
        assert made.status_code == 201 and made.json()["role"] == "regulator"
        cookie = made.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=600" in cookie
        assert "secure" not in cookie  # plain HTTP here; over TLS it is Secure (next test)
        assert KEYS["regulator"].lower() not in cookie  # the cookie never holds the key
        with client.stream("GET", "/api/v1/dashboard/stream") as stream:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        assert client.get("/api/v1/dashboard/ledger.csv").status_code in (200, 409)  # authenticated (409: no ledger)
        assert client.get("/api/v1/dashboard/snapshot").status_code == 401  # header routes do not take it
        assert client.get("/api/v1/fleet").status_code == 401
        client.cookies.set(COOKIE, client.cookies[COOKIE][:-2] + "xx")  # a tampered signature
        assert client.get("/api/v1/dashboard/stream").status_code == 401
        assert client.delete("/api/v1/session").status_code == 204


def test_the_cookie_is_secure_over_tls(tmp_path: Path) -> None:
    with controller_app(tmp_path) as (app, _), TestClient(app, base_url="https://testserver") as client:
        made = client.post("/api/v1/session", headers={"X-API-Key": KEYS["operator"]})
        assert "secure" in made.headers["set-cookie"].lower()


def test_session_tokens_expire_and_belong_to_one_realm() -> None:
    now = [1000.0]
    signer = SessionSigner("registry", secret=b"s" * 32, ttl_s=60, clock=lambda: now[0])
    who = Principal("g", "grid", Scope.of(sites=["kz1"]))
    token, expires = signer.issue(who)
    assert expires == 1060 and signer.verify(token) == who
    assert SessionSigner("controller", secret=b"s" * 32, clock=lambda: now[0]).verify(token) is None
    assert SessionSigner("registry", secret=b"t" * 32, clock=lambda: now[0]).verify(token) is None
    now[0] = 1060.0
    assert signer.verify(token) is None
    assert signer.verify("garbage") is None and signer.verify("a.b") is None


def test_failed_authentication_is_limited_per_client_and_logged_once_per_burst(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    now = [0.0]
    with controller_app(tmp_path) as (app, _), TestClient(app) as client:
        guard.realm_of(app).limiter = FailureLimiter(limit=5, window_s=30, clock=lambda: now[0])
        caplog.set_level(logging.WARNING, "kuat.auth")
        for _ in range(5):
            assert client.get("/api/v1/fleet", headers={"X-API-Key": "wrong-key-0123456789"}).status_code == 401
        for headers in ({"X-API-Key": "wrong-key-0123456789"}, {"X-API-Key": KEYS["operator"]}):
            refused = client.get("/api/v1/fleet", headers=headers)
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) == 30
        now[0] = 10.0
        assert int(client.get("/api/v1/fleet", headers={"X-API-Key": KEYS["operator"]}).headers["retry-after"]) == 20
        started = [r for r in caplog.records if "refusing it (429)" in r.getMessage()]
        assert len(started) == 1  # one line when the burst starts, not one per attempt
        now[0] = 31.0
        assert client.get("/api/v1/fleet", headers={"X-API-Key": KEYS["operator"]}).status_code == 200
        ended = [r.getMessage() for r in caplog.records if "burst" in r.getMessage()]
        assert len(ended) == 1 and "5 failed, 3 refused with 429" in ended[0], ended
        assert client.get("/api/v1/fleet").status_code == 401  # no key at all is not a failed attempt...
        assert client.get("/api/v1/fleet").status_code == 401  # ...and never limited


def test_the_limit_is_per_client() -> None:
    limiter = FailureLimiter(limit=2, window_s=10, clock=lambda: 0.0)
    limiter.failed("10.0.0.1")
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 10 and limiter.retry_after("10.0.0.2") == 0
