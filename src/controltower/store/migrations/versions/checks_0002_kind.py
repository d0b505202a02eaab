"""checks: a run's kind, so deploy gate runs stay out of the readiness history

Revision ID: checks_0002
Revises: checks_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "checks_0002"
down_revision = "checks_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("check_runs") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(20), nullable=False, server_default="readiness")
        )
        batch.create_check_constraint("ck_check_runs_kind", "kind IN ('readiness', 'deploy-gate')")


def downgrade() -> None:
    with op.batch_alter_table("check_runs") as batch:
        batch.drop_constraint("ck_check_runs_kind", type_="check")
        batch.drop_column("kind")
