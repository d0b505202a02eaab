"""Budgets: conditions (``p95 < 200ms``, ``error_rate < 0.1%``, ``rps >= 50``) on a run.

The context a budget sees: ``p50 p90 p95 p99 p99_9 (p999) max min mean latency``
in seconds, ``error_rate`` as a fraction, ``rps``, ``requests``, ``errors``,
``errors_by_kind.<kind>``, and, for global budgets, ``scenarios.<name>.<field>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controltower.conditions import Condition, ConditionResult, parse_condition
from controltower.load.results import PERCENTILES, LatencyStats

__all__ = ["BudgetResult", "context", "evaluate", "lost"]

_PERCENT_OF = {name: percent for name, percent in PERCENTILES} | {"p999": 99.9, "max": 100.0}
_PERCENT_OF["latency"] = 95.0


@dataclass(frozen=True)
class BudgetResult:
    """One budget's verdict; ``scope`` is ``global`` or a scenario name."""

    scope: str
    result: ConditionResult

    @property
    def ok(self) -> bool:
        return self.result.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "condition": self.result.condition,
            "ok": self.result.ok,
            "observed": self.result.observed,
            "message": self.result.message,
        }


ERROR_KINDS = ("connect", "timeout", "protocol", *(f"status_{n}xx" for n in range(1, 6)))


def _figures(stats: LatencyStats, elapsed: float) -> dict[str, Any]:
    """A summary where every error kind is present (0 when none happened)."""
    out = stats.summary(elapsed)
    out["errors_by_kind"] = dict.fromkeys(ERROR_KINDS, 0) | out["errors_by_kind"]
    return out


def context(
    total: LatencyStats, scenarios: dict[str, LatencyStats], elapsed: float
) -> dict[str, Any]:
    """What a global budget sees: the totals, and each scenario under ``scenarios.<name>``."""
    out = _figures(total, elapsed)
    out["scenarios"] = {name: _figures(stats, elapsed) for name, stats in scenarios.items()}
    return out


def evaluate(
    conditions: tuple[str, ...],
    scenario_conditions: dict[str, tuple[str, ...]],
    total: LatencyStats,
    scenarios: dict[str, LatencyStats],
    elapsed: float,
) -> list[BudgetResult]:
    """Every budget, global first, then each scenario's own."""
    results = [
        BudgetResult("global", parse_condition(text).evaluate(context(total, scenarios, elapsed)))
        for text in conditions
    ]
    for name, texts in scenario_conditions.items():
        local = _figures(scenarios[name], elapsed)
        results.extend(BudgetResult(name, parse_condition(text).evaluate(local)) for text in texts)
    return results


def _already_lost(condition: Condition, stats: LatencyStats, expected: float) -> bool:
    """True when no outcome of the rest of the run can meet ``condition``."""
    if condition.right is None or expected <= 0 or len(condition.left.parts) != 1:
        return False
    field = str(condition.left.parts[0])
    limit = condition.right.value
    if not isinstance(limit, int | float) or condition.operator not in ("<", "<="):
        return False
    inclusive = condition.operator == "<="
    if field == "error_rate":
        allowed = limit * expected
        errors = stats.error_count
        return errors > allowed if inclusive else errors >= allowed and errors > 0
    if field == "errors":
        return stats.error_count > limit if inclusive else stats.error_count >= limit
    if field in _PERCENT_OF:
        above = stats.count_above(float(limit))
        if field == "max":
            return above > 0
        allowed = (1 - _PERCENT_OF[field] / 100.0) * expected
        return above > allowed
    return False


def lost(
    conditions: tuple[str, ...],
    scenario_conditions: dict[str, tuple[str, ...]],
    total: LatencyStats,
    scenarios: dict[str, LatencyStats],
    expected_fraction: dict[str, float],
    expected_total: float,
) -> list[str]:
    """The budgets that are lost whatever happens in the rest of the run.

    ``expected_total`` is how many requests the whole run will send; a scenario
    gets ``expected_fraction[name]`` of them.
    """
    out = []
    for text in conditions:
        if _already_lost(parse_condition(text), total, expected_total):
            out.append(text)
    for name, texts in scenario_conditions.items():
        share = expected_total * expected_fraction.get(name, 0.0)
        out.extend(
            f"{name}: {text}"
            for text in texts
            if _already_lost(parse_condition(text), scenarios[name], share)
        )
    return out
