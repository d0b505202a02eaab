from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr

from controltower.spec.base import Section
from controltower.units import Duration


class ChannelType(StrEnum):
    SLACK = "slack"
    RESEND = "resend"
    SMTP = "smtp"
    WEBHOOK = "webhook"
    APPRISE = "apprise"


class ChannelSpec(Section):
    """``[alerts.channels.<name>]``: where notifications go. URLs and keys are secrets.

    Which keys a type needs: slack ``url``; resend ``api_key``, ``from``, ``to``;
    smtp ``host``, ``from``, ``to``; webhook ``url`` (and ``secret`` to sign);
    apprise ``url`` (any Apprise URL).
    """

    type: ChannelType
    url: SecretStr | None = None
    api_key: SecretStr | None = None
    api_url: str = ""
    secret: SecretStr | None = None
    to: list[str] = Field(default_factory=list)
    sender: str = Field(default="", alias="from")
    host: str = ""
    port: int = Field(default=587, ge=1, le=65535)
    username: str = ""
    password: SecretStr | None = None
    starttls: bool = True
    tls: bool = False
    subject_prefix: str = "[tower]"
    timeout: Duration = 10.0
    rate: float | None = Field(default=None, gt=0)


class RouteSpec(Section):
    """``[[alerts.routes]]``: which channels an incident goes to, and whom to escalate to."""

    match: dict[str, str] = Field(default_factory=dict)
    channels: list[str]
    escalate_to: list[str] = Field(default_factory=list)
    escalate_after: Duration = 900.0
    repeat_interval: Duration = 3600.0
    group_by: list[str] = Field(default_factory=lambda: ["service"])
    group_wait: Duration = 0.0
    continue_: bool = Field(default=False, alias="continue")


class MaintenanceSpec(Section):
    """``[[alerts.maintenance]]``: a recurring window in which nothing pages."""

    name: str = ""
    cron: str = ""
    weekdays: list[str] = Field(default_factory=list)
    start: str = ""
    duration: Duration = 3600.0
    timezone: str = "UTC"
    match: dict[str, str] = Field(default_factory=dict)


class DeliverySpec(Section):
    """``[alerts.delivery]``: how the outbox retries a notification before giving up."""

    max_attempts: int = Field(default=20, ge=1)
    max_age: Duration = 86400.0
    backoff: Duration = 2.0
    backoff_max: Duration = 600.0
    lease: Duration = 60.0


class AlertsSpec(Section):
    """``[alerts]``: channels, routing and maintenance windows."""

    channels: dict[str, ChannelSpec] = Field(default_factory=dict)
    routes: list[RouteSpec] = Field(default_factory=list)
    maintenance: list[MaintenanceSpec] = Field(default_factory=list)
    default_channels: list[str] = Field(default_factory=list)
    delivery: DeliverySpec = Field(default_factory=DeliverySpec)
