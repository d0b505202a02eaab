"""deploy: a release records the artifact it runs (reference, kind, digest, size)

Revision ID: deploy_0002
Revises: deploy_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "deploy_0002"
down_revision = "deploy_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deploy_releases") as batch:
        batch.add_column(sa.Column("artifact", sa.String(1000), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("artifact_kind", sa.String(20), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("artifact_digest", sa.String(100), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("artifact_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deploy_releases") as batch:
        batch.drop_column("artifact_size")
        batch.drop_column("artifact_digest")
        batch.drop_column("artifact_kind")
        batch.drop_column("artifact")
