"""Runs in the store: save each one, mark baselines, find what to compare with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update

from controltower.load.plan import redact_target
from controltower.store import Store, record_audit, service_id
from controltower.store.models.load import LoadRun

__all__ = ["StoredRun", "find_reference", "redact_target", "save_run"]

Reference = Literal["baseline", "previous"]


@dataclass(frozen=True)
class StoredRun:
    id: int
    started_at: datetime
    baseline: bool
    summary: dict[str, Any]
    sample: list[int]


def save_run(
    store: Store,
    *,
    service: str,
    environment: str,
    url: str,
    model: str,
    passed: bool,
    interrupted: bool,
    aborted: str,
    summary: dict[str, Any],
    sample: list[int],
    baseline: bool = False,
) -> int:
    """Store a run (and make it the baseline when asked); returns its id."""
    with store.session() as session:
        owner = service_id(session, service, environment)
        if baseline:
            session.execute(
                update(LoadRun).where(LoadRun.service_id == owner).values(baseline=False)
            )
        run = LoadRun(
            service_id=owner,
            url=redact_target(url)[:500],
            model=model,
            passed=passed,
            interrupted=interrupted,
            aborted=aborted,
            baseline=baseline,
            summary=summary,
            sample=sample,
        )
        session.add(run)
        session.flush()
        record_audit(
            session,
            actor="tower load",
            action="load.baseline" if baseline else "load.run",
            service=owner,
            subject=f"load run {run.id}",
            detail={"passed": passed, "url": run.url},
        )
        return run.id


def find_reference(
    store: Store, *, service: str, environment: str, which: Reference, before: int | None = None
) -> StoredRun | None:
    """The baseline, or the newest complete run before ``before``, of this service."""
    with store.session() as session:
        owner = service_id(session, service, environment)
        query = select(LoadRun).where(LoadRun.service_id == owner)
        if which == "baseline":
            query = query.where(LoadRun.baseline.is_(True))
        else:
            query = query.where(LoadRun.interrupted.is_(False))
        if before is not None:
            query = query.where(LoadRun.id < before)
        row = session.scalars(query.order_by(LoadRun.id.desc()).limit(1)).first()
        if row is None:
            return None
        return StoredRun(row.id, row.started_at, row.baseline, dict(row.summary), list(row.sample))
