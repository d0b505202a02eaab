"""checks: check runs and findings

Revision ID: checks_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controltower.store.base import JSONType, UTCDateTime

revision = "checks_0001"
down_revision = None
branch_labels = ("checks",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "check_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "service_id",
            sa.Integer(),
            sa.ForeignKey(
                "services.id", ondelete="CASCADE", name="fk_check_runs_service_id_services"
            ),
            nullable=False,
        ),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("environment", sa.String(100), nullable=False),
        sa.Column("target", sa.String(20), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("overall", sa.Float(), nullable=True),
        sa.Column("categories", JSONType, nullable=False),
        sa.Column("gates", JSONType, nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("counts", JSONType, nullable=False),
    )
    op.create_index("ix_check_runs_service_started", "check_runs", ["service_id", "started_at"])
    op.create_table(
        "check_findings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey(
                "check_runs.id", ondelete="CASCADE", name="fk_check_findings_run_id_check_runs"
            ),
            nullable=False,
        ),
        sa.Column("check_id", sa.String(100), nullable=False),
        sa.Column("category", sa.String(30), nullable=False),
        sa.Column("gate", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_check_findings_run", "check_findings", ["run_id"])
    op.create_index("ix_check_findings_check", "check_findings", ["check_id"])


def downgrade() -> None:
    op.drop_index("ix_check_findings_check", table_name="check_findings")
    op.drop_index("ix_check_findings_run", table_name="check_findings")
    op.drop_table("check_findings")
    op.drop_index("ix_check_runs_service_started", table_name="check_runs")
    op.drop_table("check_runs")
