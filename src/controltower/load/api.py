"""Run a load test from a spec, judge its budgets, compare it, keep it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controltower.conditions import ConditionResult
from controltower.load.budgets import BudgetResult, evaluate
from controltower.load.plan import Plan, plan_from_budgets
from controltower.load.results import LoadResult
from controltower.load.runner import Progress, run_load
from controltower.load.stats import Comparison, compare_samples
from controltower.spec import Spec

__all__ = [
    "BudgetCheckResult",
    "LoadOutcome",
    "compare_with",
    "judge",
    "run_budget_check",
    "run_plan",
]


@dataclass
class LoadOutcome:
    """A run with its budget verdicts and, when asked for, a comparison."""

    plan: Plan
    result: LoadResult
    budgets: list[BudgetResult]
    comparison: Comparison | None = None
    run_id: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            all(item.ok for item in self.budgets)
            and not self.result.failures
            and not self.result.aborted
        )

    @property
    def regressed(self) -> bool:
        return self.comparison is not None and self.comparison.regressed

    def all_notes(self) -> list[str]:
        notes = list(self.notes)
        result = self.result
        if result.interrupted:
            notes.append(f"interrupted after {result.elapsed:.1f}s: a partial report")
        if result.aborted:
            notes.append(f"stopped early: budget already lost ({result.aborted})")
        if result.dropped:
            notes.append(
                f"{result.dropped} scheduled requests were still unsent or unanswered "
                f"{self.plan.timeout + 1:g}s after the end and are not in the figures"
            )
        generator = result.generator
        if generator["bound"]:
            notes.append(
                "generator-bound, the figures describe the generator as much as the target: "
                + "; ".join(generator["reasons"])
            )
        elif self.plan.model == "open" and generator["queued_max"]:
            notes.append(
                f"all connections were busy at times (up to {generator['queued_max']} requests "
                "waited for one); their waiting counts in latency"
            )
        notes.extend(result.failures)
        return notes

    def to_dict(self) -> dict[str, Any]:
        data = self.result.to_dict()
        data.update(
            {
                "description": self.plan.describe(),
                "passed": self.passed,
                "budgets": [item.to_dict() for item in self.budgets],
                "comparison": self.comparison.to_dict() if self.comparison else None,
                "run_id": self.run_id,
                "notes": self.all_notes(),
            }
        )
        return data


def judge(plan: Plan, result: LoadResult) -> list[BudgetResult]:
    """Every budget of ``plan`` on ``result``."""
    return evaluate(
        plan.conditions,
        {scenario.name: scenario.conditions for scenario in plan.scenarios if scenario.conditions},
        result.total,
        result.scenarios,
        result.elapsed,
    )


def run_plan(plan: Plan, *, on_progress: Callable[[Progress], None] | None = None) -> LoadOutcome:
    """Run ``plan`` and judge its budgets."""
    result = run_load(plan, on_progress=on_progress)
    return LoadOutcome(plan, result, judge(plan, result))


def compare_with(outcome: LoadOutcome, sample: list[int], *, against: str) -> Comparison | None:
    """Compare the run's latency sample with a stored one (both in microseconds)."""
    if not sample or not outcome.result.sample:
        return None
    comparison = compare_samples(
        [value / 1e6 for value in sample],
        [value / 1e6 for value in outcome.result.sample],
        against=against,
    )
    outcome.comparison = comparison
    return comparison


@dataclass(frozen=True)
class BudgetCheckResult:
    """The performance check: ``passed``, one result per budget, and a sentence."""

    passed: bool
    results: list[ConditionResult]
    summary: str
    skipped: bool = False
    outcome: LoadOutcome | None = None


def run_budget_check(spec: Spec, url: str, *, duration: float | None = None) -> BudgetCheckResult:
    """A short load (``budgets.check_duration``) against ``url``, judged by the budgets.

    With no budget set anywhere in ``[budgets]`` it sends nothing and passes, skipped.
    """
    budgets = spec.budgets
    has_budgets = bool(budgets.conditions) or any(item.conditions for item in budgets.scenarios)
    if not has_budgets:
        return BudgetCheckResult(True, [], "no performance budgets set in [budgets]", skipped=True)
    seconds = duration if duration is not None else budgets.check_duration
    plan = plan_from_budgets(
        budgets, url, duration=seconds, ramp_up=min(budgets.ramp_up, seconds / 2)
    )
    outcome = run_plan(plan)
    results = [item.result for item in outcome.budgets]
    summary_data = outcome.result.summary()
    failed = [
        f"[{item.scope}] {item.result.message}" for item in outcome.budgets if not item.result.ok
    ]
    head = (
        f"{summary_data['requests']} requests in {outcome.result.elapsed:.1f}s, "
        f"p95 {summary_data['p95'] * 1000:.0f}ms, errors {summary_data['error_rate']:.2%}"
    )
    if outcome.passed:
        summary = f"performance budgets met: {head}"
    else:
        reasons = failed + outcome.result.failures
        if outcome.result.aborted:
            reasons.append(f"stopped early: {outcome.result.aborted}")
        summary = f"performance budgets failed: {head}; " + "; ".join(reasons)
    return BudgetCheckResult(outcome.passed, results, summary, outcome=outcome)
