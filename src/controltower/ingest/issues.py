"""Reading error issues and moving them between states.

States: ``unresolved`` (new), ``resolved`` (by a person), ``regressed`` (an
event arrived after it was resolved; set by the writer), ``ignored``.
Actions: resolve, unresolve, ignore; each is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from controltower.clock import utcnow
from controltower.store import Store, record_audit
from controltower.store.models.ingest import (
    CspReport,
    ErrorEvent,
    ErrorIssue,
    ErrorIssueHour,
    Project,
)

STATUSES = ("unresolved", "resolved", "regressed", "ignored")
ACTIONS = {"resolve": "resolved", "unresolve": "unresolved", "ignore": "ignored"}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def issue_json(issue: ErrorIssue, project: str) -> dict[str, Any]:
    return {
        "id": issue.id,
        "project": project,
        "title": issue.title,
        "culprit": issue.culprit,
        "level": issue.level,
        "status": issue.status,
        "count": issue.count,
        "first_seen": _iso(issue.first_seen),
        "last_seen": _iso(issue.last_seen),
        "resolved_at": _iso(issue.resolved_at),
        "last_release": issue.last_release,
        "fingerprint": issue.fingerprint,
    }


def event_json(event: ErrorEvent) -> dict[str, Any]:
    data = event.data or {}
    return {
        "id": event.id,
        "event_id": event.event_id,
        "issue_id": event.issue_id,
        "timestamp": _iso(event.timestamp),
        "received_at": _iso(event.received_at),
        "level": event.level,
        "environment": event.environment,
        "release": event.release,
        "code": event.code,
        "message": event.message,
        "platform": event.platform,
        "exception": data.get("exception", []),
        "context": {key: value for key, value in data.items() if key != "exception"},
    }


def list_issues(
    store: Store,
    *,
    project: str | None = None,
    status: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Issues, most recent id first, at most ``limit + 1`` (to tell if there are more)."""
    query = select(ErrorIssue, Project.name).join(Project, Project.id == ErrorIssue.project_id)
    if project:
        query = query.where(Project.name == project)
    if status:
        query = query.where(ErrorIssue.status == status)
    if before is not None:
        query = query.where(ErrorIssue.id < before)
    query = query.order_by(ErrorIssue.id.desc()).limit(limit + 1)
    with store.session() as session:
        return [issue_json(issue, name) for issue, name in session.execute(query)]


def get_issue(store: Store, issue_id: int) -> dict[str, Any] | None:
    with store.session() as session:
        row = session.execute(
            select(ErrorIssue, Project.name)
            .join(Project, Project.id == ErrorIssue.project_id)
            .where(ErrorIssue.id == issue_id)
        ).first()
        return issue_json(row[0], row[1]) if row else None


def set_status(store: Store, issue_id: int, action: str, *, actor: str) -> dict[str, Any] | None:
    """Apply ``action`` (resolve, unresolve, ignore); None if there is no such issue."""
    status = ACTIONS[action]
    with store.session() as session:
        row = session.execute(
            select(ErrorIssue, Project.name)
            .join(Project, Project.id == ErrorIssue.project_id)
            .where(ErrorIssue.id == issue_id)
        ).first()
        if row is None:
            return None
        issue, project = row
        before = issue.status
        issue.status = status
        issue.resolved_at = utcnow() if status == "resolved" else None
        if before != status:
            record_audit(
                session,
                actor=actor,
                action=f"error.{action}",
                subject=f"{project}#{issue.id}",
                detail={"from": before, "to": status},
            )
        session.flush()
        return issue_json(issue, project)


def list_events(
    store: Store, issue_id: int, *, limit: int = 50, before: int | None = None
) -> list[dict[str, Any]]:
    query = select(ErrorEvent).where(ErrorEvent.issue_id == issue_id)
    if before is not None:
        query = query.where(ErrorEvent.id < before)
    with store.session() as session:
        rows = session.scalars(query.order_by(ErrorEvent.id.desc()).limit(limit + 1))
        return [event_json(event) for event in rows]


def get_event(store: Store, event_id: str) -> dict[str, Any] | None:
    with store.session() as session:
        event = session.scalars(
            select(ErrorEvent).where(ErrorEvent.event_id == event_id.replace("-", "").lower())
        ).first()
        return event_json(event) if event else None


def hourly_counts(store: Store, issue_id: int, *, hours: int = 24) -> list[dict[str, Any]]:
    since = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    with store.session() as session:
        rows = session.execute(
            select(ErrorIssueHour.hour, ErrorIssueHour.count)
            .where(ErrorIssueHour.issue_id == issue_id, ErrorIssueHour.hour >= since)
            .order_by(ErrorIssueHour.hour)
        )
        return [{"hour": _iso(hour), "count": count} for hour, count in rows]


def list_csp(store: Store, *, project: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = select(CspReport, Project.name).join(Project, Project.id == CspReport.project_id)
    if project:
        query = query.where(Project.name == project)
    query = query.order_by(CspReport.count.desc(), CspReport.id).limit(limit)
    with store.session() as session:
        return [
            {
                "id": report.id,
                "project": name,
                "directive": report.directive,
                "blocked_uri": report.blocked_uri,
                "document_uri": report.document_uri,
                "count": report.count,
                "first_seen": _iso(report.first_seen),
                "last_seen": _iso(report.last_seen),
                "sample": report.sample,
            }
            for report, name in session.execute(query)
        ]
