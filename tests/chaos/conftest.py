"""Chaos fixtures: the private PostgreSQL cluster and the simulated site (small.toml), shared from their suites."""

from tests.agent.test_e2e_sim import sim  # noqa: F401
from tests.controller.conftest import postgres  # noqa: F401
