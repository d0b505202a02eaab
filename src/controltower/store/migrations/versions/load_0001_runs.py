"""load: runs of the load generator

Revision ID: load_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controltower.store.base import JSONType, UTCDateTime

revision = "load_0001"
down_revision = None
branch_labels = ("load",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "load_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "service_id",
            sa.Integer(),
            sa.ForeignKey(
                "services.id", ondelete="CASCADE", name="fk_load_runs_service_id_services"
            ),
            nullable=False,
        ),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("model", sa.String(10), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("interrupted", sa.Boolean(), nullable=False),
        sa.Column("aborted", sa.Text(), nullable=False),
        sa.Column("baseline", sa.Boolean(), nullable=False),
        sa.Column("summary", JSONType, nullable=False),
        sa.Column("sample", JSONType, nullable=False),
    )
    op.create_index("ix_load_runs_service_started", "load_runs", ["service_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_load_runs_service_started", table_name="load_runs")
    op.drop_table("load_runs")
