"""Backups, their verifications, and the RPO incidents raised when backups stop."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controltower.clock import utcnow
from controltower.store.base import Base


class Backup(Base):
    """One backup: a database dump or a configuration version, and where it lives."""

    __tablename__ = "backups"
    __table_args__ = (Index("ix_backups_service_kind_started", "service_id", "kind", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20), default="database")
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration: Mapped[float] = mapped_column(default=0.0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    destination: Mapped[str] = mapped_column(String(300), default="")
    key: Mapped[str] = mapped_column(String(500), default="")
    version: Mapped[int] = mapped_column(default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    verify_ok: Mapped[bool | None] = mapped_column(default=None)
    restore_seconds: Mapped[float | None] = mapped_column(default=None)


class BackupVerification(Base):
    """A restore of a backup into a scratch database, and what the sanity checks found."""

    __tablename__ = "backup_verifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    backup_id: Mapped[int] = mapped_column(ForeignKey("backups.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(default=False)
    restore_seconds: Mapped[float] = mapped_column(default=0.0)
    rto: Mapped[float] = mapped_column(default=0.0)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class BackupIncident(Base):
    """An open (or resolved) breach of a recovery objective, such as the RPO."""

    __tablename__ = "backup_incidents"
    __table_args__ = (Index("ix_backup_incidents_service_kind", "service_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20), default="rpo")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
