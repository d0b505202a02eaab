"""deploy: releases and their step logs

Revision ID: deploy_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controltower.store.base import JSONType, UTCDateTime

revision = "deploy_0001"
down_revision = None
branch_labels = ("deploy",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "deploy_releases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "service_id",
            sa.Integer(),
            sa.ForeignKey(
                "services.id", ondelete="CASCADE", name="fk_deploy_releases_service_id_services"
            ),
            nullable=False,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("image", sa.String(500), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("strategy", sa.String(20), nullable=False),
        sa.Column("driver", sa.String(20), nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=False),
        sa.Column("committed_at", UTCDateTime(), nullable=True),
        sa.Column("previous_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("request", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("warm_until", UTCDateTime(), nullable=True),
    )
    op.create_index(
        "ix_deploy_releases_service_created", "deploy_releases", ["service_id", "created_at"]
    )
    op.create_table(
        "deploy_steps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "release_id",
            sa.String(40),
            sa.ForeignKey(
                "deploy_releases.id",
                ondelete="CASCADE",
                name="fk_deploy_steps_release_id_deploy_releases",
            ),
            nullable=False,
        ),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detail", JSONType, nullable=False),
    )
    op.create_index("ix_deploy_steps_release", "deploy_steps", ["release_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_deploy_steps_release", table_name="deploy_steps")
    op.drop_table("deploy_steps")
    op.drop_index("ix_deploy_releases_service_created", table_name="deploy_releases")
    op.drop_table("deploy_releases")
