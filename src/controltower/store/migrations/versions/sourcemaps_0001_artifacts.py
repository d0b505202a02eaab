"""sourcemaps: upload chunks, artifact bundles and their files, Sentry releases

Revision ID: sourcemaps_0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controltower.store.base import UTCDateTime

revision = "sourcemaps_0001"
down_revision = None
branch_labels = ("sourcemaps",)
depends_on = "ingest_0001"


def _project_fk(table: str) -> sa.Column[int]:
    return sa.Column(
        "project_id",
        sa.Integer(),
        sa.ForeignKey(
            "ingest_projects.id", ondelete="CASCADE", name=f"fk_{table}_project_id_ingest_projects"
        ),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "upload_chunks",
        sa.Column("checksum", sa.String(40), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "artifact_bundles",
        sa.Column("id", sa.Integer(), primary_key=True),
        _project_fk("artifact_bundles"),
        sa.Column("checksum", sa.String(40), nullable=False),
        sa.Column("release", sa.String(200), nullable=False),
        sa.Column("dist", sa.String(64), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("project_id", "checksum", name="uq_artifact_bundles_project_checksum"),
    )
    op.create_table(
        "artifact_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "bundle_id",
            sa.Integer(),
            sa.ForeignKey(
                "artifact_bundles.id",
                ondelete="CASCADE",
                name="fk_artifact_files_bundle_id_artifact_bundles",
            ),
            nullable=False,
        ),
        _project_fk("artifact_files"),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("url", sa.String(1000), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("debug_id", sa.String(36), nullable=False),
        sa.Column("sourcemap", sa.String(1000), nullable=False),
        sa.Column("release", sa.String(200), nullable=False),
        sa.Column("dist", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_artifact_files_debug_id", "artifact_files", ["project_id", "debug_id", "kind"]
    )
    op.create_index(
        "ix_artifact_files_url", "artifact_files", ["project_id", "release", "dist", "url"]
    )
    op.create_table(
        "sentry_releases",
        sa.Column("id", sa.Integer(), primary_key=True),
        _project_fk("sentry_releases"),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("released_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("project_id", "version", name="uq_sentry_releases_project_version"),
    )


def downgrade() -> None:
    op.drop_table("sentry_releases")
    op.drop_table("artifact_files")
    op.drop_table("artifact_bundles")
    op.drop_table("upload_chunks")
