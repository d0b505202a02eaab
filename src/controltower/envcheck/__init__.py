"""The env catalog: sources of values, rules, .env lint, parity and .env.example."""

from __future__ import annotations

from controltower.envcheck.catalog import Difference, diff, example
from controltower.envcheck.dotenv import LintProblem, lint, parse
from controltower.envcheck.rules import Problem, check_all, shape
from controltower.envcheck.sources import Value, collect, env_files

__all__ = [
    "Difference",
    "LintProblem",
    "Problem",
    "Value",
    "check_all",
    "collect",
    "diff",
    "env_files",
    "example",
    "lint",
    "parse",
    "shape",
]
