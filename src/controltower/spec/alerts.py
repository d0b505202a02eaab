from __future__ import annotations

import re
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from controltower.spec.base import Section
from controltower.units import Duration


class ChannelType(StrEnum):
    SLACK = "slack"
    RESEND = "resend"
    SMTP = "smtp"
    WEBHOOK = "webhook"
    APPRISE = "apprise"


SLACK_MENTION = re.compile(r"<(!here|!channel|!everyone|@[UW][A-Z0-9]{2,}|!subteam\^[A-Z0-9]{2,})>")


class ChannelSpec(Section):
    """``[alerts.channels.<name>]``: where notifications go. URLs and keys are secrets.

    Which keys a type needs: slack ``url``; resend ``api_key``, ``from``, ``to``;
    smtp ``host``, ``from``, ``to``; webhook ``url`` (and ``secret`` to sign);
    apprise ``url`` (any Apprise URL). ``deduplicates`` says the receiver acts once
    per ``Idempotency-Key`` (webhook) or ``Message-ID`` (smtp); resend does by default.
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
    mentions: list[str] = Field(default_factory=list)
    deduplicates: bool | None = None

    @field_validator("mentions")
    @classmethod
    def _mentions(cls, value: list[str]) -> list[str]:
        for mention in value:
            if not SLACK_MENTION.fullmatch(mention):
                raise ValueError(
                    f"{mention!r} is not a Slack mention: write <!here>, <!channel>, "
                    "<@U0123ABCD> (a user) or <!subteam^S0123ABCD> (a user group)"
                )
        return value


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


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class MaintenanceSpec(Section):
    """``[[alerts.maintenance]]``: a recurring window in which nothing pages.

    Either ``cron`` (when each window starts) or ``weekdays`` and ``start``
    (``HH:MM``), in ``timezone``; each window lasts ``duration``. ``match``
    limits it to alerts with those labels (all alerts if empty).
    """

    name: str = ""
    cron: str = ""
    weekdays: list[str] = Field(default_factory=list)
    start: str = ""
    duration: Duration = 3600.0
    timezone: str = "UTC"
    match: dict[str, str] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if value and not croniter.is_valid(value):
            raise PydanticCustomError(
                "cron",
                'must be a cron schedule like "0 3 * * sun" (got "{value}")',
                {"value": value},
            )
        return value

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[str]) -> list[str]:
        for day in value:
            if day.lower()[:3] not in WEEKDAYS or len(day) < 3:
                raise PydanticCustomError(
                    "weekday",
                    'must be days like "mon", "tue" ... "sun" (got "{value}")',
                    {"value": day},
                )
        return value

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        found = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
        if value and (not found or int(found[1]) > 23 or int(found[2]) > 59):
            raise PydanticCustomError(
                "start", 'must be a time of day as HH:MM (got "{value}")', {"value": value}
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone",
                'must be an IANA time zone such as "Europe/Paris" or "UTC" (got "{value}")',
                {"value": value},
            ) from None
        return value

    @model_validator(mode="after")
    def _schedule(self) -> MaintenanceSpec:
        if self.cron and (self.weekdays or self.start):
            raise PydanticCustomError(
                "maintenance", "give either cron, or weekdays and start, not both"
            )
        if not self.cron and not self.start:
            raise PydanticCustomError(
                "maintenance", 'needs cron = "..." or start = "HH:MM" (with weekdays)'
            )
        if self.duration <= 0:
            raise PydanticCustomError("maintenance", "duration must be above 0s")
        return self


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
