"""Releases and their step logs: every deploy is a row before it is an action."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controltower.clock import utcnow
from controltower.store.base import Base


class Release(Base):
    """One attempt to put a version in front of traffic, and where it got to."""

    __tablename__ = "deploy_releases"
    __table_args__ = (Index("ix_deploy_releases_service_created", "service_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20), default="deploy")
    version: Mapped[str] = mapped_column(String(200), default="")
    image: Mapped[str] = mapped_column(String(500), default="")
    artifact: Mapped[str] = mapped_column(String(1000), default="")
    artifact_kind: Mapped[str] = mapped_column(String(20), default="")
    artifact_digest: Mapped[str] = mapped_column(String(100), default="")
    artifact_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    config_hash: Mapped[str] = mapped_column(String(64), default="")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str] = mapped_column(String(200), default="")
    strategy: Mapped[str] = mapped_column(String(20), default="rolling")
    driver: Mapped[str] = mapped_column(String(20), default="local")
    git_commit: Mapped[str] = mapped_column(String(64), default="")
    committed_at: Mapped[datetime | None] = mapped_column(default=None)
    previous_id: Mapped[str] = mapped_column(String(40), default="")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    state: Mapped[str] = mapped_column(String(40), default="pending")
    step: Mapped[int] = mapped_column(default=0)
    request: Mapped[str] = mapped_column(String(20), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    warm_until: Mapped[datetime | None] = mapped_column(default=None)


class ReleaseStep(Base):
    """One line of a release's step log."""

    __tablename__ = "deploy_steps"
    __table_args__ = (Index("ix_deploy_steps_release", "release_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("deploy_releases.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
