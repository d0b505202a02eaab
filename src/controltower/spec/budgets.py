from __future__ import annotations

from typing import Literal

from pydantic import Field

from controltower.conditions import ConditionText
from controltower.spec.base import Section
from controltower.units import Duration


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
