"""Incidents: their lifecycle and timeline, as plain functions the CLI and the API call.

    pending ──► firing ──► acknowledged ──► resolved
       └───────────┴──────────────┴───────────▲

An incident is a row first and a notification second: each transition and the
outbox rows about it commit in one transaction, keyed so a retry adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from controltower.clock import system_clock
from controltower.exceptions import MonitorError
from controltower.notify import Notification, enqueue
from controltower.store import Store, record_audit
from controltower.store.models.monitor import Incident, IncidentEvent, MonitorState
from controltower.typing import Clock

PENDING, FIRING, ACKNOWLEDGED, RESOLVED = "pending", "firing", "acknowledged", "resolved"
OPEN = (PENDING, FIRING, ACKNOWLEDGED)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    actor: str
    message: str


@dataclass(frozen=True)
class IncidentView:
    """An incident as the CLI and the API show it."""

    id: int
    title: str
    status: str
    severity: str
    monitors: list[str]
    labels: dict[str, Any]
    started_at: datetime
    firing_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str
    resolved_at: datetime | None
    resolved_by: str
    notified: bool
    escalated: bool
    timeline: list[TimelineEntry]

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["timeline"] = [entry.__dict__ for entry in self.timeline]
        return data


def add_event(
    session: Session,
    incident: Incident,
    kind: str,
    message: str,
    *,
    at: datetime,
    actor: str = "tower",
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        IncidentEvent(
            incident_id=incident.id,
            at=at,
            kind=kind,
            actor=actor,
            message=message,
            detail=detail or {},
        )
    )


def notification(incident: Incident, kind: str, key: str, text: str = "") -> Notification:
    labels = {str(k): str(v) for k, v in incident.labels.items()}
    return Notification(
        key=key,
        kind=kind,
        title=f"[{incident.severity}] {incident.title}"
        if kind != "incident.resolved"
        else f"[resolved] {incident.title}",
        text=text,
        severity="info" if kind == "incident.resolved" else incident.severity,
        service=labels.get("service", ""),
        environment=labels.get("environment", ""),
        fields={"incident": str(incident.id), "monitors": ", ".join(incident.monitors)},
        labels=labels,
    )


def close(session: Session, incident: Incident, *, at: datetime, actor: str, reason: str) -> int:
    """Resolve ``incident``; tell the channels that heard it fire. Returns the rows enqueued."""
    incident.status = RESOLVED
    incident.open_key = None
    incident.resolved_at = at
    incident.resolved_by = actor
    add_event(session, incident, "resolved", reason, at=at, actor=actor)
    if incident.notified_at is not None and incident.channels:
        note = notification(
            incident, "incident.resolved", f"incident:{incident.id}:resolved", reason
        )
        return enqueue(session, note, incident.channels)
    return 0


def _load(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id, with_for_update=True)
    if incident is None:
        raise MonitorError(
            f"there is no incident #{incident_id}", hint="see `tower incidents list`"
        )
    return incident


def acknowledge(
    store: Store, incident_id: int, actor: str, *, clock: Clock = system_clock
) -> IncidentView:
    """Acknowledge an open incident: reminders and escalation stop; resolution still notifies."""
    now = clock.now()
    with store.session() as session:
        incident = _load(session, incident_id)
        if incident.status == RESOLVED:
            raise MonitorError(f"incident #{incident_id} is already resolved")
        if incident.status != ACKNOWLEDGED:
            incident.status = ACKNOWLEDGED
            incident.acknowledged_at = now
            incident.acknowledged_by = actor
            add_event(
                session, incident, "acknowledged", f"acknowledged by {actor}", at=now, actor=actor
            )
            record_audit(
                session,
                actor=actor,
                action="incident.acknowledge",
                service=incident.service_id,
                subject=f"incident:{incident.id}",
            )
        session.flush()
        return _view(session, incident)


def resolve(
    store: Store,
    incident_id: int,
    actor: str,
    *,
    reason: str = "",
    clock: Clock = system_clock,
) -> IncidentView:
    """Resolve an incident by hand. Its monitors must fail their threshold again to reopen."""
    now = clock.now()
    with store.session() as session:
        incident = _load(session, incident_id)
        if incident.status == RESOLVED:
            raise MonitorError(f"incident #{incident_id} is already resolved")
        close(session, incident, at=now, actor=actor, reason=reason or f"resolved by {actor}")
        session.execute(
            update(MonitorState)
            .where(MonitorState.incident_id == incident.id)
            .values(
                incident_id=None,
                alert_status="ok",
                failing_since=None,
                recovered_since=None,
                consecutive_failures=0,
            )
        )
        record_audit(
            session,
            actor=actor,
            action="incident.resolve",
            service=incident.service_id,
            subject=f"incident:{incident.id}",
        )
        session.flush()
        return _view(session, incident)


def _view(session: Session, incident: Incident) -> IncidentView:
    events = session.scalars(
        select(IncidentEvent)
        .where(IncidentEvent.incident_id == incident.id)
        .order_by(IncidentEvent.at, IncidentEvent.id)
    )
    return IncidentView(
        id=incident.id,
        title=incident.title,
        status=incident.status,
        severity=incident.severity,
        monitors=list(incident.monitors),
        labels=dict(incident.labels),
        started_at=incident.started_at,
        firing_at=incident.firing_at,
        acknowledged_at=incident.acknowledged_at,
        acknowledged_by=incident.acknowledged_by,
        resolved_at=incident.resolved_at,
        resolved_by=incident.resolved_by,
        notified=incident.notified_at is not None,
        escalated=incident.escalated_at is not None,
        timeline=[TimelineEntry(e.at, e.kind, e.actor, e.message) for e in events],
    )


def get_incident(store: Store, incident_id: int) -> IncidentView:
    with store.session() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise MonitorError(
                f"there is no incident #{incident_id}", hint="see `tower incidents list`"
            )
        return _view(session, incident)


def list_incidents(
    store: Store, service: int | None = None, *, status: str | None = None, limit: int = 50
) -> list[IncidentView]:
    """Newest first; ``status`` is one state or ``open``."""
    with store.session() as session:
        query = select(Incident)
        if service is not None:
            query = query.where(Incident.service_id == service)
        if status == "open":
            query = query.where(Incident.status.in_(OPEN))
        elif status:
            query = query.where(Incident.status == status)
        rows = session.scalars(query.order_by(Incident.id.desc()).limit(limit)).all()
        return [_view(session, row) for row in rows]
