from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from controltower.conditions import ConditionText
from controltower.spec.base import Name, Section
from controltower.units import Duration, Percent


class MonitorType(StrEnum):
    HTTP = "http"
    TCP = "tcp"
    TLS = "tls"
    KEYWORD = "keyword"
    HEARTBEAT = "heartbeat"
    PROMETHEUS = "prometheus"
    MACHINE = "machine"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class MonitorSpec(Section):
    """``[[monitors]]``: something to probe on a schedule, and when it counts as down.

    ``conditions`` failing make a check critical (or ``severity``); ``warning``
    conditions failing make it a warning. ``metrics`` (prometheus monitors) names
    expressions over the scraped metrics, usable in both lists.
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
    enabled: bool = True
