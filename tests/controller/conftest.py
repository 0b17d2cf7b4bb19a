"""Controller fixtures: settings on a temp SQLite file, and fully built services (real registry, real SQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.runtime import Services, build_services
from controller.settings import ControllerSettings, load_settings


def make_settings(tmp_path: Path, **over: object) -> ControllerSettings:
    return load_settings(None, database_url=f"sqlite:///{tmp_path / 'kuat.sqlite'}", **over)


@pytest.fixture
def settings(tmp_path: Path) -> ControllerSettings:
    return make_settings(tmp_path)


@pytest.fixture
def services(settings: ControllerSettings) -> Iterator[Services]:
    svc = build_services(settings, with_ingest=False)
    yield svc
    svc.close()
    svc.engine.dispose()
