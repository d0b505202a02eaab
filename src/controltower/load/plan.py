"""What a load run does, as plain picklable data: built from ``[budgets]`` and the command line."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from controltower.conditions import Condition, parse_condition
from controltower.exceptions import LoadTestError
from controltower.spec.budgets import BudgetsSpec, FlowStepSpec, ScenarioSpec

__all__ = [
    "Plan",
    "Scenario",
    "Step",
    "plan_from_budgets",
    "redact_target",
    "resolve_capture",
    "substitute",
]

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Step:
    """One request: what to send, which statuses count as success, what to keep."""

    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    expect: frozenset[int] = frozenset({200})
    capture: tuple[tuple[str, str], ...] = ()

    @property
    def templated(self) -> bool:
        text = self.path + self.body + "".join(value for _, value in self.headers)
        return "{{" in text


@dataclass(frozen=True)
class Scenario:
    """A weighted request or flow (steps run in order on one connection)."""

    name: str
    steps: tuple[Step, ...]
    weight: float = 1.0
    conditions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs to run its share of the load."""

    url: str
    scenarios: tuple[Scenario, ...]
    model: Literal["open", "closed"] = "open"
    rate: float = 50.0
    users: int = 10
    think_time: float = 0.0
    duration: float = 30.0
    ramp_up: float = 0.0
    connections: int = 32
    timeout: float = 10.0
    workers: int = 1
    insecure: bool = False
    conditions: tuple[str, ...] = ()
    abort_on_fail: bool = False
    seed: int = 1

    def with_changes(self, **changes: Any) -> Plan:
        return replace(self, **changes)

    def expected_requests(self) -> float:
        """Arrivals an open-model run schedules in all (flows count once)."""
        steady = max(0.0, self.duration - self.ramp_up)
        return self.rate * (steady + min(self.ramp_up, self.duration) / 2)

    def describe(self) -> str:
        load = (
            f"{self.rate:g} req/s (open model)"
            if self.model == "open"
            else f"{self.users} users (closed model, think {self.think_time:g}s)"
        )
        target = redact_target(self.url)
        return f"{load} for {self.duration:g}s against {target}, {self.workers} worker(s)"


RATE_PER_WORKER = 2500


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), not all the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def redact_target(url: str) -> str:
    """The URL without user, password, query or fragment: what may be shown and stored."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def default_workers(model: str, rate: float, users: int) -> int:
    """Open model: one worker per 2,500 arrivals/s, up to one per core (a worker sends
    2,500/s with about a tenth of a core, so it stays punctual); closed model: one
    per core, no more than there are users."""
    cores = usable_cores()
    if model == "open":
        return max(1, min(cores, math.ceil(rate / RATE_PER_WORKER)))
    return max(1, min(cores, users))


def _expect(value: int | list[int]) -> frozenset[int]:
    return frozenset([value] if isinstance(value, int) else value)


def _step(spec: ScenarioSpec | FlowStepSpec) -> Step:
    capture = tuple(spec.capture.items()) if isinstance(spec, FlowStepSpec) else ()
    for name, expression in capture:
        _capture_path(expression, where=f"capture {name!r}")
    return Step(
        method=spec.method.upper(),
        path=spec.path,
        headers=tuple(spec.headers.items()),
        body=spec.body,
        expect=_expect(spec.expect_status),
        capture=capture,
    )


def plan_from_budgets(budgets: BudgetsSpec, url: str, **overrides: Any) -> Plan:
    """The plan ``[budgets]`` describes, with command-line ``overrides`` (None means unset)."""
    scenarios = tuple(
        Scenario(
            name=item.name,
            steps=tuple(_step(step) for step in item.steps) if item.steps else (_step(item),),
            weight=item.weight,
            conditions=tuple(str(condition) for condition in item.conditions),
        )
        for item in budgets.scenarios
    ) or (Scenario(name="default", steps=(Step(),)),)
    names = [scenario.name for scenario in scenarios]
    if len(set(names)) != len(names):
        raise LoadTestError(
            f"scenario names must be unique (got {', '.join(names)})",
            hint="rename one of the [[budgets.scenarios]] entries",
        )
    given = {key: value for key, value in overrides.items() if value is not None}
    model = given.pop("model", None) or budgets.model
    if "users" in given and "rate" not in given:
        model = "closed"
    elif "rate" in given and "users" not in given:
        model = "open"
    plan = Plan(
        url=url,
        scenarios=scenarios,
        model=model,
        rate=budgets.rate,
        users=budgets.users,
        think_time=budgets.think_time,
        duration=budgets.duration,
        ramp_up=budgets.ramp_up,
        connections=budgets.connections,
        timeout=budgets.timeout,
        conditions=tuple(str(condition) for condition in budgets.conditions),
        abort_on_fail=budgets.abort_on_fail,
    )
    plan = plan.with_changes(**given)
    if plan.workers <= 0 or "workers" not in given:
        plan = plan.with_changes(workers=default_workers(plan.model, plan.rate, plan.users))
    if plan.ramp_up > plan.duration:
        raise LoadTestError(
            f"ramp-up ({plan.ramp_up:g}s) is longer than the duration ({plan.duration:g}s)",
            hint="shorten --ramp-up or lengthen --duration",
        )
    return plan


def _capture_path(expression: str, *, where: str) -> Condition:
    try:
        return parse_condition(f"has({expression})")
    except ValueError as exc:
        raise LoadTestError(
            f"{where}: {expression!r} is not a path such as body.token or header.location: {exc}"
        ) from None


def resolve_capture(expression: str, status: int, headers: Mapping[str, str], body: bytes) -> Any:
    """The value ``expression`` (``body.id``, ``header.location``, ``status``) names, or None."""
    parsed: Any
    try:
        parsed = json.loads(body) if body[:1] in (b"{", b"[") else body.decode("utf-8", "replace")
    except ValueError:
        parsed = body.decode("utf-8", "replace")
    context = {"status": status, "header": dict(headers), "headers": dict(headers), "body": parsed}
    condition = _capture_path(expression, where="capture")
    from controltower.conditions import Path

    value = Path(condition.left.parts).resolve(context)
    return value if isinstance(value, str | int | float | bool) else None


def substitute(text: str, values: Mapping[str, Any]) -> str:
    """``text`` with each ``{{name}}`` replaced by a captured value (missing ones stay empty)."""
    return _VARIABLE.sub(lambda match: str(values.get(match.group(1), "")), text)


@dataclass
class Schedule:
    """When the open model sends arrival ``index``: constant rate after a linear ramp."""

    rate: float
    ramp_up: float = 0.0
    ramp_count: float = field(init=False)

    def __post_init__(self) -> None:
        self.ramp_count = self.rate * self.ramp_up / 2

    def at(self, index: int) -> float:
        if index < self.ramp_count:
            return math.sqrt(2 * self.ramp_up * index / self.rate)
        return self.ramp_up + (index - self.ramp_count) / self.rate

    def count_before(self, seconds: float) -> int:
        """How many arrivals are due before ``seconds`` (the inverse of ``at``)."""
        if seconds <= 0:
            return 0
        if seconds < self.ramp_up:
            expected = self.rate * seconds * seconds / (2 * self.ramp_up)
        else:
            expected = self.ramp_count + (seconds - self.ramp_up) * self.rate
        count = max(0, math.ceil(expected - 1e-9))
        while count > 0 and self.at(count - 1) >= seconds:
            count -= 1
        while self.at(count) < seconds:
            count += 1
        return count
