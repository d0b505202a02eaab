"""The store side of backups: rows written as a backup starts, finishes or fails."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controltower.backup.archive import BackupMeta
from controltower.spec import Spec
from controltower.store import Store, record_audit, service_id
from controltower.store.models.backup import Backup, BackupVerification
from controltower.typing import Clock

if TYPE_CHECKING:
    from controltower.backup.pitr import PitrBackup, PitrVerify


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


def pitr_name(spec: Spec, label: str) -> str:
    """The store name of a pgBackRest backup set (labels repeat across stanzas and stores)."""
    return f"{spec.service.name}-{environment_of(spec)}-pitr-{label}"


def pitr_row(store: Store, spec: Spec, made: PitrBackup, *, location: str = "") -> int:
    """The ``backups`` row of a pgBackRest backup set, created the first time it is seen."""
    name = pitr_name(spec, made.label)
    with store.session() as session:
        found = session.scalar(select(Backup.id).where(Backup.name == name))
        if found is not None:
            return int(found)
        row = Backup(
            name=name,
            service_id=service_of(session, spec),
            kind="pitr",
            status="ok",
            started_at=made.started_at,
            finished_at=made.finished_at,
            duration=(made.finished_at - made.started_at).total_seconds(),
            size=made.repo_size,
            destination=spec.backup.destination.type,
            key=location,
            detail={"label": made.label, "type": made.kind, "wal": [made.wal_start, made.wal_stop]},
        )
        session.add(row)
        session.flush()
        return row.id


def record_pitr_verification(
    spec: Spec, store: Store, result: PitrVerify, *, clock: Clock, actor: str
) -> int | None:
    """Record a point-in-time restore drill against the backup set it started from.

    ``backup.verified`` then judges PITR as it judges dumps: by the newest good
    ``backup_verifications`` row of the service. A restore that found no backup
    set has nothing to attach to and is not recorded.
    """
    if result.backup is None:
        return None
    row_id = pitr_row(store, spec, result.backup)
    findings = [{"name": n, "ok": ok, "message": m} for n, ok, m in result.findings]
    with store.session() as session:
        return add_verification(
            session,
            row_id,
            at=clock.now(),
            ok=result.ok,
            restore_seconds=result.restore_seconds,
            rto=result.rto,
            detail={
                "to_time": result.when.isoformat(),
                "tables": result.tables,
                "findings": findings,
            },
            actor=actor,
            audit={"restore_seconds": result.restore_seconds, "to_time": result.when.isoformat()},
        )


def add_verification(
    session: Session,
    row_id: int,
    *,
    at: datetime,
    ok: bool,
    restore_seconds: float,
    rto: float,
    detail: dict[str, Any],
    actor: str,
    audit: dict[str, Any],
) -> int:
    """Record one restore verification of backup ``row_id``, on the row and in the audit log."""
    row = session.get(Backup, row_id)
    assert row is not None
    row.verified_at = at
    row.verify_ok = ok
    row.restore_seconds = restore_seconds
    verification = BackupVerification(
        backup_id=row_id, at=at, ok=ok, restore_seconds=restore_seconds, rto=rto, detail=detail
    )
    session.add(verification)
    record_audit(
        session,
        actor=actor,
        action="backup.verified" if ok else "backup.verify_failed",
        service=row.service_id,
        subject=row.name,
        detail=audit,
    )
    session.flush()
    return verification.id
