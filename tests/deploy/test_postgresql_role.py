"""The controller role's PostgreSQL part against a real (private) PostgreSQL: database and user created, the
password stored only as a SCRAM verifier of the vault's password, and a second run changes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.scratch import PROJECT, ScratchDeployment, ansible_playbook
from tests.support.postgres import PostgresCluster
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


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


def test_database_and_user_are_created_once_with_a_hashed_password(tmp_path: Path, postgres: PostgresCluster) -> None:
    if ansible_playbook() is None:
        pytest.skip("ansible-playbook not installed (Debian package ansible)")
    scratch = ScratchDeployment(tmp_path, "pgsite", [], free_port(), controller_vars={
        "kuat_manage_mosquitto": False,
        "kuat_manage_postgresql": True,
        "kuat_postgres_become": False,
        "kuat_postgres_login_host": "127.0.0.1",
        "kuat_postgres_login_port": postgres.port,
        "kuat_postgres_login_user": "postgres",
        "kuat_db_host": "127.0.0.1",
        "kuat_db_port": postgres.port,
        # the modules need psycopg2, which the project's virtualenv has
        "ansible_python_interpreter": str(PROJECT / ".venv/bin/python"),
    })
    scratch.prepare()
    first = scratch.run("--limit", "ctl")
    assert first.returncode == 0, first.failure_messages()
    second = scratch.run("--limit", "ctl")
    assert second.returncode == 0, second.failure_messages()
    assert second.stats["ctl"]["changed"] == 0

    [(verifier,)] = query(postgres, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", "kuat")
    assert isinstance(verifier, str) and scram_matches(scratch.db_password, verifier)
    assert not scram_matches(scratch.db_password + "x", verifier)
    [(owner,)] = query(postgres, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", "kuat")
    assert owner == "kuat"
