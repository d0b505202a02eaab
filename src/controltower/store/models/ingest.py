"""Tables of error tracking: projects, issues, events, hourly counts and CSP reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controltower.clock import utcnow
from controltower.store.base import Base


class Project(Base):
    """An error-tracking project. ``public_key`` is the DSN key SDKs authenticate with."""

    __tablename__ = "ingest_projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    rate_limit: Mapped[int] = mapped_column(default=600)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ErrorIssue(Base):
    """Events grouped by fingerprint. ``status``: unresolved, resolved, regressed, ignored."""

    __tablename__ = "error_issues"
    __table_args__ = (
        UniqueConstraint("project_id", "fingerprint", name="uq_error_issues_project_fp"),
        Index("ix_error_issues_project_last", "project_id", "last_seen"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("ingest_projects.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(500))
    culprit: Mapped[str] = mapped_column(String(500), default="")
    level: Mapped[str] = mapped_column(String(20), default="error")
    status: Mapped[str] = mapped_column(String(20), default="unresolved")
    count: Mapped[int] = mapped_column(default=0)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    last_release: Mapped[str] = mapped_column(String(200), default="")
    spike_notified_at: Mapped[datetime | None] = mapped_column(default=None)


class ErrorEvent(Base):
    """One received error event, scrubbed. ``data`` holds stack, request and context."""

    __tablename__ = "error_events"
    __table_args__ = (
        Index("ix_error_events_issue_received", "issue_id", "received_at"),
        Index("ix_error_events_project_received", "project_id", "received_at"),
        UniqueConstraint("project_id", "event_id", name="uq_error_events_project_event"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("ingest_projects.id", ondelete="CASCADE"))
    issue_id: Mapped[int] = mapped_column(ForeignKey("error_issues.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(32))
    timestamp: Mapped[datetime]
    received_at: Mapped[datetime]
    level: Mapped[str] = mapped_column(String(20))
    environment: Mapped[str] = mapped_column(String(100), default="")
    release: Mapped[str] = mapped_column(String(200), default="")
    code: Mapped[str] = mapped_column(String(200), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    platform: Mapped[str] = mapped_column(String(50), default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ErrorIssueHour(Base):
    """How many events an issue received in one hour (UTC, truncated)."""

    __tablename__ = "error_issue_hours"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("error_issues.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class CspReport(Base):
    """CSP violations grouped by directive and blocked URI, with the latest sample."""

    __tablename__ = "csp_reports"
    __table_args__ = (
        UniqueConstraint(
            "project_id", "directive", "blocked_uri", name="uq_csp_reports_project_dir_uri"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("ingest_projects.id", ondelete="CASCADE"))
    directive: Mapped[str] = mapped_column(String(100))
    blocked_uri: Mapped[str] = mapped_column(String(500))
    document_uri: Mapped[str] = mapped_column(String(500), default="")
    count: Mapped[int] = mapped_column(default=0)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    sample: Mapped[dict[str, Any]] = mapped_column(default=dict)


class DeadLetter(Base):
    """An accepted event the store refused to take, kept with the reason instead of dropped.

    ``event`` is the parsed event as ASCII JSON text (any content fits); ``project_id``
    has no foreign key, so the row can always be written.
    """

    __tablename__ = "ingest_dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(index=True)
    event_id: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime]
    failed_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(Text)
