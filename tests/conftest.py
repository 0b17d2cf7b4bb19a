"""Shared fixtures: the ../shared fixtures directory (skip with a reason where it is absent) and real servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import Mosquitto

PROJECT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KUAT_SHARED", PROJECT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "fixtures").is_dir():
        pytest.skip(f"../shared is absent ({SHARED}): device-fixture tests need it (present in CI)")
    return SHARED


@pytest.fixture(scope="session")
def miner_fixtures(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "miners"


@pytest.fixture(scope="session")
def snmprec_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "snmprec"


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with Mosquitto() as m:
        yield m


def is_root() -> bool:
    return os.geteuid() == 0


requires_root = pytest.mark.skipif(
    not is_root(), reason="binds simulated miners to ports 80/4028 on 127.x addresses: needs root (CI is root)"
)
