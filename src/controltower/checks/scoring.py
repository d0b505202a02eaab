"""Readiness percentages and gate verdicts.

A finding weighs its severity (critical 10, high 5, medium 3, low 1). Passed and
waived findings earn their weight, warnings half, failures and errors nothing;
advice and skipped findings are not counted. A category's readiness is earned
over counted weight; overall readiness is the same over every category.
Gate N passes when no check of gates 1 to N fails or errors (warnings do not
block): a NO-GO at gate 1 is a NO-GO at every gate above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controltower.checks.model import GATE_NAMES, Category, Finding, Gate, Status

_CREDIT = {Status.PASS: 1.0, Status.WAIVED: 1.0, Status.WARN: 0.5}


@dataclass(frozen=True)
class Score:
    overall: float | None
    categories: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall, "categories": dict(self.categories)}


@dataclass(frozen=True)
class GateVerdict:
    """``failing``: this gate's own blocking checks; ``blocked_by``: lower gates that do not pass."""

    gate: int
    name: str
    passed: bool
    failing: tuple[str, ...] = ()
    blocked_by: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "name": self.name,
            "passed": self.passed,
            "failing": list(self.failing),
            "blocked_by": list(self.blocked_by),
        }


def _percent(findings: list[Finding]) -> float | None:
    counted = [f for f in findings if f.status.counted]
    total = sum(f.severity.weight for f in counted)
    if not total:
        return None
    earned = sum(f.severity.weight * _CREDIT.get(f.status, 0.0) for f in counted)
    return round(100.0 * earned / total, 1)


def score(findings: list[Finding]) -> Score:
    categories = {c.value: _percent([f for f in findings if f.category is c]) for c in Category}
    return Score(_percent(findings), categories)


def gate_verdicts(findings: list[Finding]) -> dict[int, GateVerdict]:
    verdicts: dict[int, GateVerdict] = {}
    below: list[int] = []
    for gate in sorted(Gate):
        failing = tuple(f.id for f in findings if f.gate is gate and f.status.blocks)
        verdicts[int(gate)] = GateVerdict(
            int(gate), GATE_NAMES[gate], not failing and not below, failing, tuple(below)
        )
        if failing:
            below.append(int(gate))
    return verdicts
