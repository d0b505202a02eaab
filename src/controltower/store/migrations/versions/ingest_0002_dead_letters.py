"""ingest: dead letters (accepted events the store refused, with the reason)

Revision ID: ingest_0002
Revises: ingest_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controltower.store.base import UTCDateTime

revision = "ingest_0002"
down_revision = "ingest_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_dead_letters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("failed_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
    )
    op.create_index("ix_ingest_dead_letters_project_id", "ingest_dead_letters", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_ingest_dead_letters_project_id", table_name="ingest_dead_letters")
    op.drop_table("ingest_dead_letters")
