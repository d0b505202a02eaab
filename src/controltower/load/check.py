"""``performance.budgets``: the ``tower check`` view of the budgets, a short load against the live URL.

The check sends nothing unless ``[budgets]`` sets a condition somewhere (globally
or on a scenario) and ``budgets.check_duration`` is above zero. It runs alone,
after every other check, so its load does not colour their measurements.
"""

from __future__ import annotations

import asyncio

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Outcome,
    Severity,
    Status,
    skipped,
)
from controltower.load.api import run_budget_check

__all__ = ["LoadBudgets"]

_FIX = Fix(
    "Find the slow or failing requests with a longer run and its report "
    "(`tower load --html load.html`), or change the budget if it was wrong",
    "tower.toml",
    '[budgets]\nconditions = ["p95 < 200ms", "error_rate < 0.1%"]',
)


@register
class LoadBudgets(Check):
    """With [budgets] conditions set, a short constant-rate load (budgets.check_duration)
    against the live URL meets every budget, such as p95 < 200ms and error_rate < 0.1%."""

    id = "performance.budgets"
    title = "Performance budgets hold under a short load"
    category = Category.PERFORMANCE
    gate = Gate.DEPLOY
    severity = Severity.HIGH
    kind = "live"
    exclusive = True
    remedy = "Find the slow or failing path in the load report (tower load --format html) and fix it, or revisit the budget."

    async def run(self, ctx: CheckContext) -> Outcome:
        budgets = ctx.spec.budgets
        if budgets.check_duration <= 0:
            return skipped("budgets.check_duration is 0: no load during tower check")
        if not budgets.conditions and not any(item.conditions for item in budgets.scenarios):
            return skipped("no performance budgets set in [budgets]")
        assert ctx.url is not None
        result = await asyncio.to_thread(run_budget_check, ctx.spec, ctx.url)
        outcome = result.outcome
        data: dict[str, object] = {}
        details: list[str] = []
        if outcome is not None:
            summary = outcome.result.summary()
            data = {
                key: summary[key]
                for key in ("requests", "rps", "error_rate", "p50", "p95", "p99", "max")
            }
            data["budgets"] = [item.to_dict() for item in outcome.budgets]
            details = [
                f"{'pass' if item.ok else 'FAIL'} [{item.scope}] {item.result.message}"
                for item in outcome.budgets
            ]
            details.extend(outcome.all_notes())
        if result.passed:
            return Outcome(Status.PASS, result.summary, details=tuple(details), data=data)
        return Outcome(Status.FAIL, result.summary, _FIX, details=tuple(details), data=data)
