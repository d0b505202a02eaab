"""The audit trail: every change of state, with who did it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controltower.clock import utcnow
from controltower.store.models.core import AuditEvent, Service


def service_id(session: Session, name: str, environment: str = "default") -> int:
    """The id of service ``name`` in ``environment``, created on first use."""
    found = session.scalar(
        select(Service.id).where(Service.name == name, Service.environment == environment)
    )
    if found is not None:
        return found
    try:
        with session.begin_nested():
            row = Service(name=name, environment=environment)
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        found = session.scalar(
            select(Service.id).where(Service.name == name, Service.environment == environment)
        )
        assert found is not None
        return found


def record_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    service: int | None = None,
    subject: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        at=utcnow(),
        actor=actor,
        action=action,
        service_id=service,
        subject=subject,
        detail=detail or {},
    )
    session.add(event)
    return event
