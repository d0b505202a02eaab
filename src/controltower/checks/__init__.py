"""Readiness checks: a registry of static and live checks, scored into go/no-go gates."""

from __future__ import annotations

from controltower.checks.base import Check, CheckContext, register, registered, select, unregister
from controltower.checks.model import (
    Category,
    Finding,
    Fix,
    Gate,
    Location,
    Outcome,
    Severity,
    Status,
    failed,
    passed,
    skipped,
    warned,
)
from controltower.checks.runner import CheckRun, run_checks
from controltower.checks.scoring import GateVerdict, Score

__all__ = [
    "Category",
    "Check",
    "CheckContext",
    "CheckRun",
    "Finding",
    "Fix",
    "Gate",
    "GateVerdict",
    "Location",
    "Outcome",
    "Score",
    "Severity",
    "Status",
    "failed",
    "passed",
    "register",
    "registered",
    "run_checks",
    "select",
    "skipped",
    "unregister",
    "warned",
]
