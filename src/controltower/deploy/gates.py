"""Pre-deploy gates: the ``tower check`` gates named in ``[deploy] gates``.

The static checks run on the tree about to ship, exactly as ``tower check
--static --gate N`` would with N the highest gate named (gates are cumulative).
Live checks are left out: before the switch they would judge the release that
is already serving, not the new one; smoke checks and analysis judge that.
The run is stored with ``kind = "deploy-gate"``: the deploy refers to it, and
the readiness history leaves it out (it judges a subset of the checks).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from controltower.spec import Spec
from controltower.store import Store

T = TypeVar("T")


@dataclass(frozen=True)
class GateOutcome:
    passed: bool
    skipped: bool
    summary: str
    failing: list[str] = field(default_factory=list)
    run_id: str = ""


def _run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run`` that also works when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def run_gates(spec: Spec, *, root: Path, store: Store | None = None) -> GateOutcome:
    """Run the static checks of the gates named in ``[deploy] gates``; pass when all pass."""
    gates = sorted({int(g) for g in spec.deploy.gates})
    if not gates:
        return GateOutcome(True, True, "skipped (no gates)")
    from controltower.checks import CheckContext, run_checks, select

    top = max(gates)
    checks = [c for c in select(kinds=("static",)) if int(c.gate) <= top]
    context = CheckContext(
        spec=spec,
        root=(root / spec.service.root).resolve(),
        url=None,
        environment=spec.environment,
        environ=dict(os.environ),
    )
    run = _run_sync(lambda: run_checks(context, checks, requested_gate=top))
    if store is not None:
        from controltower.checks.history import save_run
        from controltower.store.models.checks import RunKind

        save_run(store, run, RunKind.DEPLOY_GATE)
    failing = sorted(
        {check for g, verdict in run.gates.items() if g <= top for check in verdict.failing}
    )
    verdicts = ", ".join(
        f"gate {g} {'GO' if v.passed else 'NO-GO'}"
        for g, v in sorted(run.gates.items())
        if g <= top
    )
    summary = f"{len(checks)} static checks: {verdicts}"
    if failing:
        summary += f" (failing: {', '.join(failing)}; see `tower check --static --gate {top}`)"
    return GateOutcome(run.passed, False, summary, failing, run.id)
