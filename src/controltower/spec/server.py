from __future__ import annotations

import re
from enum import StrEnum

from pydantic import Field, SecretStr, field_validator

from controltower.spec.base import Name, Section
from controltower.units import Duration, Size, parse_duration


class ErrorLevel(StrEnum):
    """Sentry's event levels, least to most severe."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    FATAL = "fatal"


LEVEL_ORDER = {level.value: rank for rank, level in enumerate(ErrorLevel)}

_ORIGIN = re.compile(r"^https?://[^/\s?#]+/?$", re.IGNORECASE)
_SPIKE = re.compile(r"^\s*(\d+)\s+in\s+(\S+)\s*$")


def parse_spike(value: str) -> tuple[int, float]:
    """``"10 in 5m"`` -> ``(10, 300.0)``: N events within a window of seconds."""
    match = _SPIKE.match(value)
    if not match:
        raise ValueError(f'must read "<count> in <duration>", e.g. "10 in 5m" (got "{value}")')
    count = int(match.group(1))
    window = parse_duration(match.group(2))
    if count < 1 or window <= 0:
        raise ValueError(f"needs a count of at least 1 and a positive window (got {value!r})")
    return count, window


class ErrorAlertsSpec(Section):
    """``[server.error_alerts]``: when error tracking notifies, and through which channels.

    A new issue (or a regressed one) at ``min_level`` or above notifies; so does an
    issue that receives ``spike`` events (``"<count> in <duration>"``). ``channels``
    name ``[alerts.channels]``; empty means the first resend channel, else the
    ``[alerts] default_channels``.
    """

    enabled: bool = True
    channels: list[str] = Field(default_factory=list)
    min_level: ErrorLevel = ErrorLevel.ERROR
    spike: str = "10 in 5m"

    @field_validator("spike")
    @classmethod
    def _spike(cls, value: str) -> str:
        if value:
            parse_spike(value)
        return value


class ProjectSpec(Section):
    """``[[server.projects]]``: an error-tracking project with its own DSN.

    ``rate_limit`` is the number of events per minute the project may send;
    beyond it, ingestion answers 429 with Retry-After. ``vitals_rate_limit`` is
    the same for web-vitals metrics (a page load sends about five).
    ``allowed_origins`` are the origins (``https://shop.example``) browsers may
    send web-vitals beacons from; empty allows any.
    """

    name: Name
    rate_limit: int = Field(default=600, ge=1)
    vitals_rate_limit: int = Field(default=6000, ge=1)
    allowed_origins: list[str] = Field(default_factory=list)
    environment: str = ""
    events_keep: Duration = 0.0

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        out = []
        for origin in value:
            if origin == "*":
                out.append(origin)
                continue
            if not _ORIGIN.match(origin):
                raise ValueError(
                    'each origin is "*" or scheme://host[:port] with no path, '
                    f'e.g. "https://shop.example" (got "{origin}")'
                )
            out.append(origin.rstrip("/").lower())
        return out


class ServerSpec(Section):
    """``[server]``: the process that serves the API, dashboard and status page."""

    host: str = "127.0.0.1"
    port: int = Field(default=8600, ge=0, le=65535)
    public_url: str = ""
    title: str = ""
    max_event_size: Size = 1024 * 1024
    max_body_size: Size = 1024 * 1024
    max_decompression_ratio: int = Field(default=200, ge=2)
    max_envelope_items: int = Field(default=100, ge=1)
    max_json_depth: int = Field(default=64, ge=2, le=512)
    max_string_size: Size = 256 * 1024
    buffer_size: int = Field(default=20000, ge=1)
    batch_size: int = Field(default=500, ge=1)
    flush_interval: Duration = 0.2
    shutdown_timeout: Duration = 20.0
    projects: list[ProjectSpec] = Field(default_factory=list)
    error_alerts: ErrorAlertsSpec = Field(default_factory=ErrorAlertsSpec)
    events_keep: Duration = 90 * 86400.0
    heartbeat_url: SecretStr | None = None
    heartbeat_interval: Duration = Field(default=60.0, gt=0)
