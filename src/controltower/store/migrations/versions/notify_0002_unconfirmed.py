"""notify: when a send went out, and the sends whose outcome was never known

Revision ID: notify_0002
Revises: notify_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controltower.store.base import UTCDateTime

revision = "notify_0002"
down_revision = "notify_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("unconfirmed", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("in_flight_at", UTCDateTime(), nullable=True))
    # A row mid-send during the upgrade may have gone out: count it as in flight.
    op.execute("UPDATE outbox SET in_flight_at = next_attempt_at WHERE status = 'sending'")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("in_flight_at")
        batch.drop_column("unconfirmed")
