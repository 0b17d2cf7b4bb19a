"""National tests: the private PostgreSQL cluster (one per session) for the registry and the controllers."""

from tests.controller.conftest import postgres  # noqa: F401
