"""The store side of backups: rows written as a backup starts, finishes or fails."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controltower.backup.archive import BackupMeta
from controltower.spec import Spec
from controltower.store import Store, record_audit, service_id
from controltower.store.models.backup import Backup


def environment_of(spec: Spec) -> str:
    return spec.environment or "default"


def service_of(session: Session, spec: Spec) -> int:
    return service_id(session, spec.service.name, environment_of(spec))


def start_row(
    store: Store, spec: Spec, *, name: str, kind: str, at: datetime, destination: str, key: str
) -> int:
    with store.session() as session:
        row = Backup(
            name=name,
            service_id=service_of(session, spec),
            kind=kind,
            status="running",
            started_at=at,
            destination=destination,
            key=key,
            detail={},
        )
        session.add(row)
        session.flush()
        return row.id


def finish_row(
    store: Store, row_id: int, meta: BackupMeta, *, finished: datetime, actor: str = "tower"
) -> None:
    with store.session() as session:
        row = session.get(Backup, row_id)
        assert row is not None
        row.status = "ok"
        row.finished_at = finished
        row.duration = meta.duration
        row.size = meta.size
        row.sha256 = meta.sha256
        row.version = meta.version
        row.detail = {
            "server_version": meta.server_version,
            "source": meta.source,
            "database": meta.database,
            "tables": meta.tables,
            "files": meta.files,
            "encryption": meta.encryption,
        }
        record_audit(
            session,
            actor=actor,
            action=f"backup.{meta.kind}.ok",
            service=row.service_id,
            subject=meta.name,
            detail={"size": meta.size, "sha256": meta.sha256, "duration": meta.duration},
        )


def fail_row(
    store: Store, row_id: int, error: str, *, finished: datetime, actor: str = "tower"
) -> None:
    with store.session() as session:
        row = session.get(Backup, row_id)
        assert row is not None
        row.status = "failed"
        row.finished_at = finished
        row.duration = (finished - row.started_at).total_seconds()
        row.error = error
        record_audit(
            session,
            actor=actor,
            action=f"backup.{row.kind}.failed",
            service=row.service_id,
            subject=row.name,
            detail={"error": error[:500]},
        )


def rows(
    store: Store, spec: Spec, *, kind: str | None = "database", status: str | None = None
) -> list[Backup]:
    """Backups of this service (newest first)."""
    with store.session() as session:
        query = select(Backup).where(Backup.service_id == service_of(session, spec))
        if kind:
            query = query.where(Backup.kind == kind)
        if status:
            query = query.where(Backup.status == status)
        return list(session.scalars(query.order_by(Backup.started_at.desc(), Backup.id.desc())))


def find_row(store: Store, name: str) -> Backup | None:
    with store.session() as session:
        return session.scalar(select(Backup).where(Backup.name == name))


def import_row(store: Store, spec: Spec, meta: BackupMeta, *, destination: str, key: str) -> int:
    """Record a backup found at the destination but not in this store."""
    with store.session() as session:
        started = datetime.fromisoformat(meta.started_at)
        row = Backup(
            name=meta.name,
            service_id=service_of(session, spec),
            kind=meta.kind,
            status="ok",
            started_at=started,
            finished_at=datetime.fromisoformat(meta.finished_at),
            duration=meta.duration,
            size=meta.size,
            sha256=meta.sha256,
            destination=destination,
            key=key,
            version=meta.version,
            detail={"imported": True, "tables": meta.tables},
        )
        session.add(row)
        session.flush()
        return row.id


def describe_row(row: Backup) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "status": row.status,
        "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "duration": round(row.duration, 3),
        "size": row.size,
        "sha256": row.sha256,
        "destination": row.destination,
        "version": row.version,
        "verified_at": row.verified_at.isoformat() if row.verified_at else None,
        "verify_ok": row.verify_ok,
        "restore_seconds": row.restore_seconds,
        "error": row.error,
    }
