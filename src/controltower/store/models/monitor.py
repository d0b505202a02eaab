"""Monitoring state: monitors, raw results, rollups, incidents with their timeline, silences."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controltower.clock import utcnow
from controltower.store.base import Base


class MonitorState(Base):
    """One monitor of one service: its counters, its lease and where its alert stands.

    A worker that holds the lease (``lease_owner`` until ``lease_expires_at``) checks
    the monitor and moves the counters; the alerting leader reads them.
    """

    __tablename__ = "monitor_state"
    __table_args__ = (
        UniqueConstraint("service_id", "name", name="uq_monitor_state_service_name"),
        Index("ix_monitor_state_lease", "service_id", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(20), default="http")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(10), default="unknown")
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    consecutive_successes: Mapped[int] = mapped_column(default=0)
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    recovered_since: Mapped[datetime | None] = mapped_column(default=None)
    last_check_at: Mapped[datetime | None] = mapped_column(default=None)
    last_message: Mapped[str] = mapped_column(Text, default="")
    next_due_at: Mapped[datetime | None] = mapped_column(default=None)
    last_ping_at: Mapped[datetime | None] = mapped_column(default=None)
    last_ping_status: Mapped[str] = mapped_column(String(10), default="")
    lease_owner: Mapped[str] = mapped_column(String(200), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    alert_status: Mapped[str] = mapped_column(String(20), default="ok")
    alert_severity: Mapped[str] = mapped_column(String(10), default="")
    incident_id: Mapped[int | None] = mapped_column(default=None)


class MonitorResult(Base):
    """One check: kept raw for a while, then only in rollups."""

    __tablename__ = "monitor_results"
    __table_args__ = (Index("ix_monitor_results_monitor_at", "monitor_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitor_state.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    ok: Mapped[bool] = mapped_column(Boolean)
    level: Mapped[str] = mapped_column(String(10))
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(String(500), default="")
    worker: Mapped[str] = mapped_column(String(200), default="")


class MonitorRollup(Base):
    """Checks and failures of one monitor in one minute, hour or day."""

    __tablename__ = "monitor_rollups"
    __table_args__ = (
        UniqueConstraint("monitor_id", "bucket", "start", name="uq_monitor_rollups_key"),
        Index("ix_monitor_rollups_bucket_start", "bucket", "start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitor_state.id", ondelete="CASCADE"))
    bucket: Mapped[str] = mapped_column(String(6))
    start: Mapped[datetime]
    checks: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
    latency_sum: Mapped[float] = mapped_column(Float, default=0.0)
    latency_max: Mapped[float] = mapped_column(Float, default=0.0)


class Incident(Base):
    """One outage of a group of monitors: pending -> firing -> acknowledged -> resolved.

    ``open_key`` is the group key while the incident is open and NULL after, so a
    group has at most one open incident.
    """

    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("open_key", name="uq_incidents_open_key"),
        Index("ix_incidents_service_status", "service_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    group_key: Mapped[str] = mapped_column(String(300))
    open_key: Mapped[str | None] = mapped_column(String(300), default=None)
    title: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    severity: Mapped[str] = mapped_column(String(10), default="critical")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    monitors: Mapped[list[str]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    firing_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_by: Mapped[str] = mapped_column(String(200), default="")
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[str] = mapped_column(String(200), default="")
    notified_at: Mapped[datetime | None] = mapped_column(default=None)
    notified_severity: Mapped[str] = mapped_column(String(10), default="")
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    reminders: Mapped[int] = mapped_column(default=0)
    last_reminder_at: Mapped[datetime | None] = mapped_column(default=None)
    escalated_at: Mapped[datetime | None] = mapped_column(default=None)
    suppressed_by: Mapped[str] = mapped_column(String(200), default="")


class IncidentEvent(Base):
    """A line of an incident's timeline."""

    __tablename__ = "incident_events"
    __table_args__ = (Index("ix_incident_events_incident_at", "incident_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str] = mapped_column(String(200), default="tower")
    message: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Silence(Base):
    """Matchers (label = value) under which no notification goes out until ``ends_at``."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    matchers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    starts_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
