"""Settings of the alerts side (`alerts:` in the controller's settings): job intervals, retries, the SMTP relay."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SmtpSettings(BaseModel):
    """The relay e-mail channels send through (smtplib). No relay configured: e-mail channels fail and say why."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    sender: str = "kuat@localhost"
    starttls: bool = False  # STARTTLS after connecting (port 587)
    ssl: bool = False  # TLS from the start (port 465)
    username: str | None = None
    password: str | None = None
    timeout_s: float = Field(10.0, gt=0)


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    evaluate_s: float = Field(15.0, gt=0)  # real seconds between evaluations of every rule
    deliver_s: float = Field(5.0, gt=0)  # real seconds between passes over the deliveries due
    max_attempts: int = Field(8, ge=1, le=100)  # then the delivery is recorded as failed
    backoff_s: float = Field(10.0, gt=0)  # first retry after this; doubles each attempt
    backoff_max_s: float = Field(1800.0, gt=0)
    webhook_timeout_s: float = Field(10.0, gt=0)
    smtp: SmtpSettings | None = None
    dashboard_url: str | None = None  # put in messages as a link to the Alerts tab (e.g. https://ops.example/ui)
    facts_cache_s: float = Field(300.0, ge=0)  # the commercial meter's comparison is re-read this often
