"""Load testing with performance budgets: ``tower load``.

An open-model (constant arrival rate, no coordinated omission) or closed-model
load generator in worker processes, HDR latency histograms, budgets in the
shared conditions language, stored runs compared with a Mann-Whitney U test,
and terminal, JSON and HTML reports.
"""

from __future__ import annotations

from controltower.load.api import (
    BudgetCheckResult,
    LoadOutcome,
    compare_with,
    judge,
    run_budget_check,
    run_plan,
)
from controltower.load.budgets import BudgetResult
from controltower.load.plan import Plan, Scenario, Step, plan_from_budgets
from controltower.load.results import LoadResult
from controltower.load.runner import Progress, run_load
from controltower.load.stats import Comparison, compare_samples, mann_whitney_u

__all__ = [
    "BudgetCheckResult",
    "BudgetResult",
    "Comparison",
    "LoadOutcome",
    "LoadResult",
    "Plan",
    "Progress",
    "Scenario",
    "Step",
    "compare_samples",
    "compare_with",
    "judge",
    "mann_whitney_u",
    "plan_from_budgets",
    "run_budget_check",
    "run_load",
    "run_plan",
]
