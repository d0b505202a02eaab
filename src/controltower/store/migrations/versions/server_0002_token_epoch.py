"""server: the token revocation epoch every worker reads

Revision ID: server_0002
Revises: server_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "server_0002"
down_revision = "server_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_epochs",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_epochs")
