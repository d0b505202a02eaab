"""vitals: web-vitals beacons, one row per page load and metric

Revision ID: vitals_0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controltower.store.base import UTCDateTime

revision = "vitals_0001"
down_revision = None
branch_labels = ("vitals",)
depends_on = "ingest_0001"

_NAMES = ("LCP", "INP", "CLS", "FCP", "TTFB", "FID")


def upgrade() -> None:
    op.create_table(
        "web_vitals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer(),
            sa.ForeignKey(
                "ingest_projects.id",
                ondelete="CASCADE",
                name="fk_web_vitals_project_id_ingest_projects",
            ),
            nullable=False,
        ),
        sa.Column("metric_id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(8), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("rating", sa.String(20), nullable=False),
        sa.Column("navigation_type", sa.String(30), nullable=False),
        sa.Column("page", sa.String(300), nullable=False),
        sa.Column("release", sa.String(200), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("project_id", "name", "metric_id", name="uq_web_vitals_metric"),
        sa.CheckConstraint(
            "name IN (" + ", ".join(f"'{n}'" for n in _NAMES) + ")", name="ck_web_vitals_name"
        ),
    )
    op.create_index("ix_web_vitals_project_received", "web_vitals", ["project_id", "received_at"])
    op.create_index("ix_web_vitals_release_received", "web_vitals", ["release", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_web_vitals_release_received", table_name="web_vitals")
    op.drop_index("ix_web_vitals_project_received", table_name="web_vitals")
    op.drop_table("web_vitals")
