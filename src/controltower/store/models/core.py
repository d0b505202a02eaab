"""Tables every subsystem shares: services, the audit log, and locks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controltower.clock import utcnow
from controltower.store.base import Base


class Service(Base):
    """A service in one environment, as named in tower.toml."""

    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("name", "environment", name="uq_services_name_env"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    environment: Mapped[str] = mapped_column(String(100), default="default")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Something that happened, who did it, and to what. Never holds a secret."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_service_at", "service_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Lock(Base):
    """A named lease: one owner at a time until it expires or is released."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
