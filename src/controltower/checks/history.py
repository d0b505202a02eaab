"""Check runs in the store: save one, read the trend."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from controltower.checks.runner import CheckRun
from controltower.store import Store, service_id
from controltower.store.models.checks import CheckFindingRow, CheckRunRow, RunKind


def save_run(store: Store, run: CheckRun, kind: RunKind = RunKind.READINESS) -> None:
    """Store ``run`` and its findings (id, status, severity, message: never a value).

    A deploy's gate run is stored as ``deploy-gate``: it is kept with the deploy,
    and the readiness history (trend, dashboard score) leaves it out.
    """
    with store.session() as session:
        sid = service_id(session, run.service, run.environment or "default")
        session.add(
            CheckRunRow(
                id=run.id,
                service_id=sid,
                service=run.service,
                environment=run.environment or "",
                target=run.target,
                url=run.url or "",
                started_at=run.started_at,
                finished_at=run.finished_at,
                overall=run.score.overall,
                categories=dict(run.score.categories),
                gates={str(g): v.to_dict() for g, v in run.gates.items()},
                passed=all(v.passed for v in run.gates.values()),
                counts=dict(Counter(f.status.value for f in run.findings)),
                kind=kind.value,
            )
        )
        session.flush()
        session.add_all(
            CheckFindingRow(
                run_id=run.id,
                check_id=f.id,
                category=f.category.value,
                gate=int(f.gate),
                severity=f.severity.value,
                status=f.status.value,
                message=f.message[:2000],
            )
            for f in run.findings
        )


@dataclass(frozen=True)
class HistoryEntry:
    id: str
    started_at: datetime
    environment: str
    overall: float | None
    categories: dict[str, Any]
    gates: dict[str, Any]
    counts: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": self.started_at.isoformat(),
            "environment": self.environment,
            "overall": self.overall,
            "categories": self.categories,
            "gates": self.gates,
            "counts": self.counts,
        }


def history(
    store: Store, service: str, environment: str | None = None, limit: int = 20
) -> list[HistoryEntry]:
    """The latest ``limit`` runs of ``service``, oldest first."""
    with store.session() as session:
        query = select(CheckRunRow).where(
            CheckRunRow.service == service, CheckRunRow.kind == RunKind.READINESS.value
        )
        if environment is not None:
            query = query.where(CheckRunRow.environment == environment)
        rows = session.scalars(query.order_by(CheckRunRow.started_at.desc()).limit(limit)).all()
        entries = [
            HistoryEntry(
                r.id, r.started_at, r.environment, r.overall, r.categories, r.gates, r.counts
            )
            for r in rows
        ]
    return list(reversed(entries))


def findings_of(store: Store, run_id: str) -> list[dict[str, Any]]:
    with store.session() as session:
        rows = session.scalars(
            select(CheckFindingRow)
            .where(CheckFindingRow.run_id == run_id)
            .order_by(CheckFindingRow.id)
        ).all()
        return [
            {
                "id": r.check_id,
                "category": r.category,
                "gate": r.gate,
                "severity": r.severity,
                "status": r.status,
                "message": r.message,
            }
            for r in rows
        ]
