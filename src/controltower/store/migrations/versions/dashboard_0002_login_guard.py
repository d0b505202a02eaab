"""dashboard: login throttling and single-use login form nonces

Revision ID: dashboard_0002
Revises: dashboard_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controltower.store.base import UTCDateTime

revision = "dashboard_0002"
down_revision = "dashboard_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_login_failures",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "dashboard_login_nonces",
        sa.Column("nonce_hash", sa.String(64), primary_key=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_dashboard_login_nonces_expires_at", "dashboard_login_nonces", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_dashboard_login_nonces_expires_at", "dashboard_login_nonces")
    op.drop_table("dashboard_login_nonces")
    op.drop_table("dashboard_login_failures")
