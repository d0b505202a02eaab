"""ingest: projects, error issues, events, hourly counts, CSP reports

Revision ID: ingest_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controltower.store.base import JSONType, UTCDateTime

revision = "ingest_0001"
down_revision = None
branch_labels = ("ingest",)
depends_on = "core_0001"


def _project_fk(table: str) -> sa.Column[int]:
    return sa.Column(
        "project_id",
        sa.Integer(),
        sa.ForeignKey(
            "ingest_projects.id", ondelete="CASCADE", name=f"fk_{table}_project_id_ingest_projects"
        ),
        nullable=False,
    )


def _issue_fk(table: str) -> sa.Column[int]:
    return sa.Column(
        "issue_id",
        sa.Integer(),
        sa.ForeignKey(
            "error_issues.id", ondelete="CASCADE", name=f"fk_{table}_issue_id_error_issues"
        ),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "ingest_projects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("rate_limit", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("name", name="uq_ingest_projects_name"),
        sa.UniqueConstraint("public_key", name="uq_ingest_projects_public_key"),
    )
    op.create_table(
        "error_issues",
        sa.Column("id", sa.Integer(), primary_key=True),
        _project_fk("error_issues"),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("culprit", sa.String(500), nullable=False),
        sa.Column("level", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("last_release", sa.String(200), nullable=False),
        sa.Column("spike_notified_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("project_id", "fingerprint", name="uq_error_issues_project_fp"),
    )
    op.create_index("ix_error_issues_project_last", "error_issues", ["project_id", "last_seen"])
    op.create_table(
        "error_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        _project_fk("error_events"),
        _issue_fk("error_events"),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("level", sa.String(20), nullable=False),
        sa.Column("environment", sa.String(100), nullable=False),
        sa.Column("release", sa.String(200), nullable=False),
        sa.Column("code", sa.String(200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(50), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.UniqueConstraint("project_id", "event_id", name="uq_error_events_project_event"),
    )
    op.create_index("ix_error_events_issue_received", "error_events", ["issue_id", "received_at"])
    op.create_table(
        "error_issue_hours",
        _issue_fk("error_issue_hours"),
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "hour", name="pk_error_issue_hours"),
    )
    op.create_table(
        "csp_reports",
        sa.Column("id", sa.Integer(), primary_key=True),
        _project_fk("csp_reports"),
        sa.Column("directive", sa.String(100), nullable=False),
        sa.Column("blocked_uri", sa.String(500), nullable=False),
        sa.Column("document_uri", sa.String(500), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("sample", JSONType, nullable=False),
        sa.UniqueConstraint(
            "project_id", "directive", "blocked_uri", name="uq_csp_reports_project_dir_uri"
        ),
    )


def downgrade() -> None:
    op.drop_table("csp_reports")
    op.drop_table("error_issue_hours")
    op.drop_index("ix_error_events_issue_received", table_name="error_events")
    op.drop_table("error_events")
    op.drop_index("ix_error_issues_project_last", table_name="error_issues")
    op.drop_table("error_issues")
    op.drop_table("ingest_projects")
