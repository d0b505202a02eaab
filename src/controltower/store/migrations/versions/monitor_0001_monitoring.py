"""monitor: monitor state, results, rollups, incidents, incident events, silences

Revision ID: monitor_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controltower.store.base import JSONType, UTCDateTime

revision = "monitor_0001"
down_revision = None
branch_labels = ("monitor",)
depends_on = ("core_0001", "notify_0001")


def _service_fk(table: str) -> sa.Column[int]:
    return sa.Column(
        "service_id",
        sa.Integer(),
        sa.ForeignKey("services.id", ondelete="CASCADE", name=f"fk_{table}_service_id_services"),
        nullable=False,
    )


def _monitor_fk(table: str) -> sa.Column[int]:
    return sa.Column(
        "monitor_id",
        sa.Integer(),
        sa.ForeignKey(
            "monitor_state.id", ondelete="CASCADE", name=f"fk_{table}_monitor_id_monitor_state"
        ),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "monitor_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        _service_fk("monitor_state"),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("consecutive_successes", sa.Integer(), nullable=False),
        sa.Column("failing_since", UTCDateTime(), nullable=True),
        sa.Column("recovered_since", UTCDateTime(), nullable=True),
        sa.Column("last_check_at", UTCDateTime(), nullable=True),
        sa.Column("last_message", sa.Text(), nullable=False),
        sa.Column("next_due_at", UTCDateTime(), nullable=True),
        sa.Column("last_ping_at", UTCDateTime(), nullable=True),
        sa.Column("last_ping_status", sa.String(10), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=False),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("alert_status", sa.String(20), nullable=False),
        sa.Column("alert_severity", sa.String(10), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.UniqueConstraint("service_id", "name", name="uq_monitor_state_service_name"),
    )
    op.create_index("ix_monitor_state_lease", "monitor_state", ["service_id", "lease_expires_at"])
    op.create_table(
        "monitor_results",
        sa.Column("id", sa.Integer(), primary_key=True),
        _monitor_fk("monitor_results"),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("message", sa.String(500), nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
    )
    op.create_index("ix_monitor_results_monitor_at", "monitor_results", ["monitor_id", "at"])
    op.create_table(
        "monitor_rollups",
        sa.Column("id", sa.Integer(), primary_key=True),
        _monitor_fk("monitor_rollups"),
        sa.Column("bucket", sa.String(6), nullable=False),
        sa.Column("start", UTCDateTime(), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.Column("latency_max", sa.Float(), nullable=False),
        sa.UniqueConstraint("monitor_id", "bucket", "start", name="uq_monitor_rollups_key"),
    )
    op.create_index("ix_monitor_rollups_bucket_start", "monitor_rollups", ["bucket", "start"])
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), primary_key=True),
        _service_fk("incidents"),
        sa.Column("group_key", sa.String(300), nullable=False),
        sa.Column("open_key", sa.String(300), nullable=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("monitors", sa.JSON(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("firing_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(200), nullable=False),
        sa.Column("notified_at", UTCDateTime(), nullable=True),
        sa.Column("notified_severity", sa.String(10), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("reminders", sa.Integer(), nullable=False),
        sa.Column("last_reminder_at", UTCDateTime(), nullable=True),
        sa.Column("escalated_at", UTCDateTime(), nullable=True),
        sa.Column("suppressed_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("open_key", name="uq_incidents_open_key"),
    )
    op.create_index("ix_incidents_service_status", "incidents", ["service_id", "status"])
    op.create_table(
        "incident_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "incident_id",
            sa.Integer(),
            sa.ForeignKey(
                "incidents.id", ondelete="CASCADE", name="fk_incident_events_incident_id_incidents"
            ),
            nullable=False,
        ),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detail", JSONType, nullable=False),
    )
    op.create_index("ix_incident_events_incident_at", "incident_events", ["incident_id", "at"])
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), primary_key=True),
        _service_fk("silences"),
        sa.Column("matchers", JSONType, nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])


def downgrade() -> None:
    for table in (
        "silences",
        "incident_events",
        "incidents",
        "monitor_rollups",
        "monitor_results",
        "monitor_state",
    ):
        op.drop_table(table)
