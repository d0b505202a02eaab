"""ingest: an index on error events by project and received time, for retention

Without it each retention batch ("the oldest events of this project, before
the cutoff") read every event of the project: a million-event store pruned at
about 200 events a second.

Revision ID: ingest_0003
Revises: ingest_0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "ingest_0003"
down_revision = "ingest_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_error_events_project_received", "error_events", ["project_id", "received_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_error_events_project_received", table_name="error_events")
