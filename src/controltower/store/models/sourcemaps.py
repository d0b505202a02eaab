"""Tables of source maps: uploaded chunks, artifact bundles with their file index, releases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controltower.clock import utcnow
from controltower.store.base import Base


class UploadChunk(Base):
    """One chunk of an upload (``sentry-cli`` chunk upload), named by its SHA-1."""

    __tablename__ = "upload_chunks"

    checksum: Mapped[str] = mapped_column(String(40), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArtifactBundle(Base):
    """An assembled artifact bundle (a zip with a manifest) of one project and release."""

    __tablename__ = "artifact_bundles"
    __table_args__ = (
        UniqueConstraint("project_id", "checksum", name="uq_artifact_bundles_project_checksum"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("ingest_projects.id", ondelete="CASCADE"))
    checksum: Mapped[str] = mapped_column(String(40))
    release: Mapped[str] = mapped_column(String(200), default="")
    dist: Mapped[str] = mapped_column(String(64), default="")
    file_count: Mapped[int] = mapped_column(default=0)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArtifactFile(Base):
    """A file of a bundle, found by debug ID or by release, dist and URL."""

    __tablename__ = "artifact_files"
    __table_args__ = (
        Index("ix_artifact_files_debug_id", "project_id", "debug_id", "kind"),
        Index("ix_artifact_files_url", "project_id", "release", "dist", "url"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("artifact_bundles.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("ingest_projects.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1000))
    url: Mapped[str] = mapped_column(String(1000), default="")
    kind: Mapped[str] = mapped_column(String(30))
    debug_id: Mapped[str] = mapped_column(String(36), default="")
    sourcemap: Mapped[str] = mapped_column(String(1000), default="")
    release: Mapped[str] = mapped_column(String(200), default="")
    dist: Mapped[str] = mapped_column(String(64), default="")


class SentryRelease(Base):
    """A release as ``sentry-cli releases`` and the bundler plugins create and finalize it."""

    __tablename__ = "sentry_releases"
    __table_args__ = (
        UniqueConstraint("project_id", "version", name="uq_sentry_releases_project_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("ingest_projects.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(default=None)
