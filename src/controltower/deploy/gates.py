"""Pre-deploy gates: the ``tower check`` gates named in ``[deploy] gates``.

The checks framework is reached through one entry point, imported lazily::

    controltower.checks.run_gates(spec, *, root: Path, url: str | None, gates: list[int])
        -> GateResult(passed: bool, summary: str)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from controltower.spec import Spec


@dataclass(frozen=True)
class GateOutcome:
    passed: bool
    skipped: bool
    summary: str


def run_gates(spec: Spec, *, root: Path) -> GateOutcome:
    gates = [int(g) for g in spec.deploy.gates]
    if not gates:
        return GateOutcome(True, True, "skipped (no gates)")
    try:
        checks = importlib.import_module("controltower.checks")
    except ImportError:
        return GateOutcome(True, True, "skipped (no gates: the checks framework is not installed)")
    entry = getattr(checks, "run_gates", None)
    if entry is None:
        return GateOutcome(True, True, "skipped (no gates: controltower.checks has no run_gates)")
    result = entry(spec, root=root, url=spec.url, gates=gates)
    return GateOutcome(bool(result.passed), False, str(result.summary))
