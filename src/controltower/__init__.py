"""controltower: make a web application production-ready and keep it there."""

from __future__ import annotations

from controltower.__about__ import __version__
from controltower.conditions import Condition, ConditionResult, parse_condition
from controltower.exceptions import SpecError, SpecIssue, TowerError
from controltower.spec import Spec, load_spec, parse_spec

__all__ = [
    "Condition",
    "ConditionResult",
    "Spec",
    "SpecError",
    "SpecIssue",
    "TowerError",
    "__version__",
    "load_spec",
    "parse_condition",
    "parse_spec",
]
