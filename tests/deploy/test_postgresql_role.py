"""The controller role's PostgreSQL part, run by the session's site playbook against a private PostgreSQL: the
database and user exist, and the password is stored only as a SCRAM verifier of the vault's password (the
playbook's second run reporting changed=0 covers idempotency)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from tests.deploy.conftest import Deployed
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.integration


def scram_matches(password: str, verifier: str) -> bool:
    """True if `verifier` (pg_authid.rolpassword, SCRAM-SHA-256$iter:salt$StoredKey:ServerKey) is `password`'s."""
    method, params, keys = verifier.split("$")
    iterations, salt = params.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return method == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)


def query(cluster: PostgresCluster, sql: str, *args: str) -> list[tuple[object, ...]]:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres", dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def test_database_and_user_exist_with_a_hashed_password(deployed: Deployed) -> None:
    if deployed.postgres is None:
        pytest.skip(f"no private PostgreSQL: {deployed.postgres_missing}")
    [(verifier,)] = query(deployed.postgres, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", "kuat")
    assert isinstance(verifier, str) and scram_matches(deployed.scratch.db_password, verifier)
    assert not scram_matches(deployed.scratch.db_password + "x", verifier)
    [(owner,)] = query(deployed.postgres, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", "kuat")
    assert owner == "kuat"
