from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from controltower.conditions import ConditionText
from controltower.spec.base import Section
from controltower.units import Duration, Size


class FlowStepSpec(Section):
    """One request in a flow; ``capture`` keeps values from its response for later steps."""

    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""
    expect_status: int | list[int] = 200
    capture: dict[str, str] = Field(default_factory=dict)


class ScenarioSpec(Section):
    """``[[budgets.scenarios]]``: a weighted request or flow, with its own budgets."""

    name: str
    weight: float = Field(default=1.0, gt=0)
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""
    expect_status: int | list[int] = 200
    steps: list[FlowStepSpec] = Field(default_factory=list)
    conditions: list[ConditionText] = Field(default_factory=list)


class WebBudgetsSpec(Section):
    """``[budgets.web]``: Lighthouse budgets for pages of the ``--url`` being checked.

    ``performance`` is the lowest Lighthouse performance score (0-100); ``lcp``,
    ``fcp``, ``tbt`` (Total Blocking Time, the lab stand-in for INP) and
    ``speed_index`` are the longest durations, ``cls`` the largest layout shift
    and ``total_bytes`` the heaviest transfer. A budget left unset is reported,
    not judged.
    """

    pages: list[str] = Field(default_factory=lambda: ["/"], min_length=1, max_length=20)
    performance: int | None = Field(default=None, ge=0, le=100)
    lcp: Duration | None = None
    fcp: Duration | None = None
    tbt: Duration | None = None
    speed_index: Duration | None = None
    cls: float | None = Field(default=None, ge=0)
    total_bytes: Size | None = None
    form_factor: Literal["mobile", "desktop"] = "mobile"
    timeout: Duration = Field(default=120.0, gt=0)

    @field_validator("pages")
    @classmethod
    def _pages(cls, value: list[str]) -> list[str]:
        for page in value:
            if not page.startswith("/") or any(c.isspace() for c in page):
                raise ValueError(f'each page is a path that starts with "/" (got "{page}")')
        return value


class BudgetsSpec(Section):
    """``[budgets]``: performance budgets and the load that measures them."""

    conditions: list[ConditionText] = Field(default_factory=list)
    model: Literal["open", "closed"] = "open"
    rate: float = Field(default=50.0, gt=0)
    users: int = Field(default=10, ge=1)
    think_time: Duration = 0.0
    duration: Duration = Field(default=30.0, gt=0)
    ramp_up: Duration = 0.0
    connections: int = Field(default=32, ge=1)
    timeout: Duration = Field(default=10.0, gt=0)
    abort_on_fail: bool = False
    check_duration: Duration = 5.0
    scenarios: list[ScenarioSpec] = Field(default_factory=list)
    web: WebBudgetsSpec | None = None
