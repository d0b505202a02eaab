from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from controltower.conditions import ConditionText
from controltower.exceptions import MonitorError
from controltower.promexpr import Expression
from controltower.spec.base import Name, Section
from controltower.units import Duration, Percent, Size


class MonitorType(StrEnum):
    HTTP = "http"
    TCP = "tcp"
    TLS = "tls"
    KEYWORD = "keyword"
    HEARTBEAT = "heartbeat"
    PROMETHEUS = "prometheus"
    MACHINE = "machine"
    VITALS = "vitals"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class MonitorSpec(Section):
    """``[[monitors]]``: something to probe on a schedule, and when it counts as down.

    ``conditions`` failing make a check critical (or ``severity``); ``warning``
    conditions failing make it a warning. ``metrics`` (prometheus monitors) names
    expressions over the scraped metrics, usable in both lists.

    What each type needs: http, keyword and prometheus an http(s) ``url``
    (keyword also ``keyword``); tcp ``host`` and ``port`` (or a ``url`` with
    both); tls ``host`` or a ``url``; heartbeat and machine nothing. vitals
    monitors read the web-vitals beacons ``tower serve`` stored over ``window``
    (of ``project`` and ``page`` when given) and judge a metric only once it has
    ``min_samples`` samples.
    """

    name: Name
    type: MonitorType = MonitorType.HTTP
    url: str = ""
    host: str = ""
    port: int | None = Field(default=None, ge=1, le=65535)
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""
    keyword: str = ""
    interval: Duration = 30.0
    timeout: Duration = 10.0
    conditions: list[ConditionText] = Field(default_factory=list)
    warning: list[ConditionText] = Field(default_factory=list)
    metrics: dict[str, str] = Field(default_factory=dict)
    memory_limit: Size | None = None
    verify: bool = True
    ca_file: str = ""
    follow_redirects: bool = True
    keep_results: int = Field(default=100, ge=1)
    severity: Severity = Severity.CRITICAL
    failure_threshold: int = Field(default=3, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    for_: Duration = Field(default=0.0, alias="for")
    keep_firing_for: Duration = 0.0
    depends_on: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    slo: Percent | None = None
    grace: Duration = 0.0
    project: str = ""
    page: str = ""
    window: Duration = 3600.0
    min_samples: int = Field(default=20, ge=1)
    enabled: bool = True

    @model_validator(mode="after")
    def _needs(self) -> MonitorSpec:
        kind = ("an " if self.type.value[0] in "aeiouh" else "a ") + self.type.value
        if self.type in (MonitorType.HTTP, MonitorType.KEYWORD, MonitorType.PROMETHEUS):
            if not self.url:
                raise PydanticCustomError("monitor", "{kind} monitor needs url", {"kind": kind})
            if urlsplit(self.url).scheme not in ("http", "https"):
                raise PydanticCustomError(
                    "monitor",
                    '{kind} monitor\'s url must start with http:// or https:// (got "{url}")',
                    {"kind": kind, "url": self.url},
                )
        if self.type is MonitorType.KEYWORD and not self.keyword:
            raise PydanticCustomError(
                "monitor", "a keyword monitor needs keyword (the text the page must contain)"
            )
        if self.type in (MonitorType.TCP, MonitorType.TLS):
            host, port = self.host, self.port
            if not host and self.url:
                parts = urlsplit(self.url if "://" in self.url else f"tcp://{self.url}")
                host, port = parts.hostname or "", port or parts.port
            if not host:
                raise PydanticCustomError(
                    "monitor", "{kind} monitor needs host (or url)", {"kind": kind}
                )
            if self.type is MonitorType.TCP and port is None:
                raise PydanticCustomError("monitor", "a tcp monitor needs port")
        for name, text in self.metrics.items():
            try:
                Expression(text)
            except MonitorError as exc:
                raise PydanticCustomError(
                    "monitor", "metrics.{name}: {why}", {"name": name, "why": exc.message}
                ) from None
        if self.interval <= 0 or self.timeout <= 0:
            raise PydanticCustomError("monitor", "interval and timeout must be above 0s")
        return self
