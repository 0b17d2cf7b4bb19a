"""Settings of the standalone registry service (environment variables KUAT_REGISTRY_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUAT_REGISTRY_")

    database_url: str = Field("sqlite:///kuat-registry.db", description="SQLite file or postgresql://... URL")
    missing_after_days: float = Field(3.0, gt=0, description="a registered machine unseen this long is missing")
    fresh_minutes: float = Field(15.0, gt=0, description="a sighting this old still proves 'mining now'")
    compliance_interval_s: float = Field(300.0, ge=0, description="how often the app re-checks (0: never)")
    signing_key_file: str | None = Field(
        None, description="the registry's Ed25519 private key (PEM, created 0600 on first start); unset: a key that "
                          "lives only as long as the process (tests; `kuat registry serve` always sets one)")
    idempotency_keep_days: float = Field(30.0, gt=0, description="how long applied Idempotency-Keys are kept")
