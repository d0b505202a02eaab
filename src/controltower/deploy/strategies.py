"""Strategies are pure: each turns the spec into a plan, a list of steps the engine runs.

The plan is stored with the release, so a restarted ``tower`` knows what was
done and what is left. Builders return plain data and are tested by equality.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from controltower.spec.deploy import CanaryStepSpec, DeploySpec, Strategy

DEFAULT_CANARY = ("5%", "25%", "50%")


class StepKind(StrEnum):
    """What a step does; the engine has one handler per kind."""

    GATES = "gates"
    HOOKS = "hooks"
    START = "start"
    HEALTH = "health"
    ROUTE = "route"
    ANALYSE = "analyse"
    SMOKE = "smoke"
    STOP_OLD = "stop_old"
    RETIRE = "retire"


@dataclass(frozen=True)
class Step:
    """One step of a plan.

    kinds: ``gates``, ``hooks`` (phase), ``start`` (count), ``health``, ``route`` (weight of
    the new release), ``analyse`` (pause; None waits for ``tower deploy promote``),
    ``smoke``, ``stop_old`` (count, 0 for all), ``retire`` (keep the old release warm).
    """

    kind: str
    weight: float = 0.0
    count: int = 0
    pause: float | None = None
    phase: str = ""

    @property
    def label(self) -> str:
        if self.kind == "hooks":
            return f"hooks:{self.phase}"
        if self.kind == "route":
            return f"route:{round(self.weight * 100, 2):g}%"
        if self.kind in ("start", "stop_old"):
            return f"{self.kind}:{self.count or 'all'}"
        if self.kind == "analyse":
            return "analyse:" + ("until-promote" if self.pause is None else f"{self.pause:g}s")
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(**data)


def _switch_tail(spec: DeploySpec) -> list[Step]:
    return [Step("smoke"), Step("stop_old"), Step("hooks", phase="post_deploy")]


def _pre(kind: str) -> list[Step]:
    if kind == "rollback":
        return []
    return [Step("gates"), Step("hooks", phase="pre_deploy")]


def immediate(spec: DeploySpec, kind: str = "deploy") -> list[Step]:
    return [
        *_pre(kind),
        Step("start", count=spec.instances),
        Step("health"),
        Step("hooks", phase="pre_switch"),
        Step("route", weight=1.0),
        *_switch_tail(spec),
    ]


def _analyse(spec: DeploySpec) -> list[Step]:
    """One analysis window after a traffic change, when there are conditions."""
    return [Step("analyse", pause=spec.analysis.interval)] if spec.analysis.conditions else []


def rolling(spec: DeploySpec) -> list[Step]:
    """Batch by batch: start, health, shift its share, analyse it, then stop as many old."""
    total, batch = spec.instances, min(spec.max_unavailable, spec.instances)
    steps = [*_pre("deploy")]
    started = 0
    while started < total:
        size = min(batch, total - started)
        started += size
        steps += [Step("start", count=size), Step("health")]
        if started == size:
            steps.append(Step("hooks", phase="pre_switch"))
        steps += [
            Step("route", weight=started / total),
            *_analyse(spec),
            Step("stop_old", count=size),
        ]
    return [*steps, *_switch_tail(spec)]


def bluegreen(spec: DeploySpec) -> list[Step]:
    """Green takes all traffic at once; it is analysed while blue still runs, warm."""
    analyse = _analyse(spec)
    return [
        *_pre("deploy"),
        Step("start", count=spec.instances),
        Step("health"),
        Step("hooks", phase="pre_switch"),
        Step("route", weight=1.0),
        *analyse,
        Step("smoke"),
        Step("retire"),
        Step("hooks", phase="post_deploy"),
    ]


def canary(spec: DeploySpec) -> list[Step]:
    steps = spec.steps or [
        CanaryStepSpec.model_validate({"weight": w, "pause": spec.analysis.interval})
        for w in DEFAULT_CANARY
    ]
    plan = [
        *_pre("deploy"),
        Step("start", count=spec.instances),
        Step("health"),
        Step("hooks", phase="pre_switch"),
    ]
    for step in steps:
        if step.weight >= 1.0:
            break
        plan += [Step("route", weight=step.weight), Step("analyse", pause=step.pause)]
    return [*plan, Step("route", weight=1.0), *_switch_tail(spec)]


def rollback(spec: DeploySpec, *, reuse: bool) -> list[Step]:
    """Back to an earlier release: its warm instances if they run, else new ones."""
    start = [] if reuse else [Step("start", count=spec.instances)]
    return [
        *start,
        Step("health"),
        Step("route", weight=1.0),
        Step("smoke"),
        Step("stop_old"),
        Step("hooks", phase="on_rollback"),
    ]


def build_plan(spec: DeploySpec, strategy: Strategy, *, has_previous: bool) -> list[Step]:
    """The plan for a deploy. A first deploy has nothing to shift traffic from: immediate."""
    if not has_previous or strategy is Strategy.IMMEDIATE:
        return immediate(spec)
    if strategy is Strategy.ROLLING:
        return rolling(spec)
    if strategy is Strategy.BLUEGREEN:
        return bluegreen(spec)
    return canary(spec)


def commit_index(plan: list[Step]) -> int:
    """Steps after this index only finish a deploy whose new release took all traffic and passed.

    A deploy interrupted after it is resumed; one interrupted before it is rolled back.
    """
    for index, step in enumerate(plan):
        if step.kind == "smoke":
            return index
    return len(plan)
