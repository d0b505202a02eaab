"""backup: backups, verifications, RPO incidents

Revision ID: backup_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controltower.store.base import JSONType, UTCDateTime

revision = "backup_0001"
down_revision = None
branch_labels = ("backup",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "service_id",
            sa.Integer(),
            sa.ForeignKey("services.id", ondelete="CASCADE", name="fk_backups_service_id_services"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("destination", sa.String(300), nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("detail", JSONType, nullable=False),
        sa.Column("verified_at", UTCDateTime(), nullable=True),
        sa.Column("verify_ok", sa.Boolean(), nullable=True),
        sa.Column("restore_seconds", sa.Float(), nullable=True),
        sa.UniqueConstraint("name", name="uq_backups_name"),
    )
    op.create_index(
        "ix_backups_service_kind_started", "backups", ["service_id", "kind", "started_at"]
    )
    op.create_table(
        "backup_verifications",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "backup_id",
            sa.Integer(),
            sa.ForeignKey(
                "backups.id", ondelete="CASCADE", name="fk_backup_verifications_backup_id_backups"
            ),
            nullable=False,
        ),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("restore_seconds", sa.Float(), nullable=False),
        sa.Column("rto", sa.Float(), nullable=False),
        sa.Column("detail", JSONType, nullable=False),
    )
    op.create_table(
        "backup_incidents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "service_id",
            sa.Integer(),
            sa.ForeignKey(
                "services.id", ondelete="CASCADE", name="fk_backup_incidents_service_id_services"
            ),
            nullable=False,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("detail", JSONType, nullable=False),
    )
    op.create_index("ix_backup_incidents_service_kind", "backup_incidents", ["service_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_backup_incidents_service_kind", table_name="backup_incidents")
    op.drop_table("backup_incidents")
    op.drop_table("backup_verifications")
    op.drop_index("ix_backups_service_kind_started", table_name="backups")
    op.drop_table("backups")
