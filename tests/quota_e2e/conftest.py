"""The agent's simulated-site fixture (small.toml on random loopback blocks, quick physics), shared here."""

from tests.agent.test_e2e_sim import sim  # noqa: F401
