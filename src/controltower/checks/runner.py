"""Run checks concurrently, apply platform rules and waivers, and score the run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import httpx

from controltower.checks.base import Check, CheckContext, registered, select
from controltower.checks.model import (
    Category,
    Finding,
    Fix,
    Gate,
    Outcome,
    Severity,
    Status,
)
from controltower.checks.scoring import GateVerdict, Score, gate_verdicts, score
from controltower.spec.waivers import WaiverSpec

Progress = Callable[[Finding], None]

WAIVER_EXPIRED = "waivers.expired"


@dataclass
class CheckRun:
    """A finished run: findings, scores and gate verdicts."""

    id: str
    service: str
    environment: str | None
    target: str
    url: str | None
    started_at: datetime
    finished_at: datetime
    findings: list[Finding]
    score: Score
    gates: dict[int, GateVerdict]
    requested_gate: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the requested gate (every gate when none was requested) passes."""
        top = self.requested_gate or max(self.gates)
        return all(self.gates[g].passed for g in self.gates if g <= top)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "environment": self.environment,
            "target": self.target,
            "url": self.url,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "score": self.score.to_dict(),
            "gates": {str(g): v.to_dict() for g, v in self.gates.items()},
            "requested_gate": self.requested_gate,
            "passed": self.passed,
            "findings": [f.to_dict() for f in self.findings],
        }


def finding_for(
    check: Check, outcome: Outcome, ctx: CheckContext, duration: float = 0.0
) -> Finding:
    """Turn an outcome into a finding, applying the check's platform rules."""
    status, advice = outcome.status, str(outcome.data.get("advice_reason", ""))
    if status.blocks and ctx.target in check.advice_on:
        status, advice = Status.ADVICE, check.advice_reason or f"not required on {ctx.target.value}"
    return Finding(
        id=check.id,
        title=check.title,
        category=check.category,
        gate=check.gate,
        severity=check.severity,
        status=status,
        message=outcome.message,
        fix=outcome.fix,
        location=outcome.location,
        details=outcome.details,
        advice_reason=advice,
        hadolint=str(outcome.data.get("hadolint") or check.hadolint),
        kind=check.kind,
        data=outcome.data,
        duration=duration,
        items=outcome.items,
    )


async def run_one(check: Check, ctx: CheckContext) -> Finding:
    if ctx.target not in check.targets:
        names = ", ".join(sorted(t.value for t in check.targets))
        outcome = Outcome(Status.SKIP, f"applies to {names}, not {ctx.target.value}")
        return finding_for(check, outcome, ctx)
    if check.production_only and not ctx.is_production:
        return finding_for(check, Outcome(Status.SKIP, "applies to production only"), ctx)
    if check.kind == "live" and (ctx.url is None or ctx.client is None):
        return finding_for(check, Outcome(Status.SKIP, "no URL: pass --url or --env"), ctx)
    started = ctx.clock.monotonic()
    try:
        outcome = await check.run(ctx)
    except httpx.HTTPError as exc:
        outcome = Outcome(Status.ERROR, f"request failed: {type(exc).__name__}: {exc}")
    except Exception as exc:  # a broken check must not stop the run
        outcome = Outcome(Status.ERROR, f"check crashed: {type(exc).__name__}: {exc}")
    return finding_for(check, outcome, ctx, ctx.clock.monotonic() - started)


def apply_waivers(
    findings: list[Finding],
    waivers: list[WaiverSpec],
    ctx: CheckContext,
    known: set[str] | None = None,
) -> list[Finding]:
    """Waive failing findings with a live waiver.

    An expired waiver waives nothing and is itself a failure, and so is a waiver
    naming no check (a typo would leave the intended check unwaived); a waiver
    whose check passes anyway is reported so it can be removed.
    """
    today = ctx.clock.now().date()
    ids = set(registered()) | (known or set()) | {f.id for f in findings}
    result = list(findings)
    broken: list[str] = []
    notes: list[str] = []
    for waiver in waivers:
        if waiver.environments and (ctx.environment or "") not in waiver.environments:
            continue
        if waiver.check not in ids:
            broken.append(f"{waiver.check}: no check has this id (see `tower check --list`)")
            continue
        if waiver.expires < today:
            broken.append(f"{waiver.label}: expired {waiver.expires.isoformat()} ({waiver.reason})")
            continue
        if waiver.advisory:
            continue  # the check itself waives that advisory alone
        for index, finding in enumerate(result):
            if finding.id != waiver.check:
                continue
            if finding.status in (Status.FAIL, Status.WARN, Status.ERROR):
                result[index] = replace(
                    finding,
                    status=Status.WAIVED,
                    message=f"{finding.message} (waived until {waiver.expires.isoformat()}: {waiver.reason})",
                )
            elif finding.status is Status.PASS:
                notes.append(f"{waiver.check}: passes now; the waiver can go")
    if waivers:
        count = f"{len(waivers)} waiver{'s' if len(waivers) != 1 else ''}"
        result.append(
            Finding(
                id=WAIVER_EXPIRED,
                title="Waivers in tower.toml are current and name real checks",
                category=Category.CONFIG,
                gate=Gate.CORE,
                severity=Severity.HIGH,
                status=Status.FAIL if broken else Status.PASS,
                message=(
                    f"{len(broken)} of {count} expired or naming no check"
                    if broken
                    else f"{count}, none expired"
                ),
                fix=Fix(
                    "Fix the check, or renew the waiver with a new reason and expiry date",
                    file="tower.toml",
                    lines='[[waivers]]\ncheck = "<id>"\nreason = "<why this is acceptable>"\nexpires = 2026-12-31',
                )
                if broken
                else None,
                details=tuple(broken + notes),
            )
        )
    return result


async def run_checks(
    ctx: CheckContext,
    checks: list[Check] | None = None,
    *,
    concurrency: int = 8,
    progress: Progress | None = None,
    requested_gate: int | None = None,
) -> CheckRun:
    """Run ``checks`` (default: every registered check) concurrently and score them."""
    chosen = checks if checks is not None else select()
    started = ctx.clock.now()
    limit = asyncio.Semaphore(concurrency)

    async def guarded(check: Check) -> Finding:
        async with limit:
            finding = await run_one(check, ctx)
        if progress is not None:
            progress(finding)
        return finding

    # Checks that measure time run alone after the rest, so their numbers are not
    # the load the other checks put on the service.
    findings = list(await asyncio.gather(*(guarded(c) for c in chosen if not c.exclusive)))
    for check in (c for c in chosen if c.exclusive):
        findings.append(await guarded(check))
    findings = apply_waivers(findings, ctx.spec.waivers, ctx, known={c.id for c in chosen})
    findings.sort(key=lambda f: (int(f.gate), f.category.value, f.id))
    return CheckRun(
        id=uuid.uuid4().hex,
        service=ctx.spec.service.name,
        environment=ctx.environment,
        target=ctx.target.value,
        url=ctx.url,
        started_at=started,
        finished_at=ctx.clock.now(),
        findings=findings,
        score=score(findings),
        gates=gate_verdicts(findings),
        requested_gate=requested_gate,
    )
