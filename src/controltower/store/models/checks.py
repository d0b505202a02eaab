"""Check runs and their findings: what `tower check` measured, for history and the dashboard."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controltower.clock import utcnow
from controltower.store.base import Base


class RunKind(StrEnum):
    """``readiness``: a `tower check` run, the history's; ``deploy-gate``: a deploy's pre-flight."""

    READINESS = "readiness"
    DEPLOY_GATE = "deploy-gate"


class CheckRunRow(Base):
    """One `tower check` run. ``categories``: {category: percent or null}; ``gates``: {"1": {...}}."""

    __tablename__ = "check_runs"
    __table_args__ = (
        Index("ix_check_runs_service_started", "service_id", "started_at"),
        CheckConstraint("kind IN ('readiness', 'deploy-gate')", name="ck_check_runs_kind"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(String(100))
    environment: Mapped[str] = mapped_column(String(100), default="")
    target: Mapped[str] = mapped_column(String(20), default="")
    url: Mapped[str] = mapped_column(String(500), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)
    overall: Mapped[float | None] = mapped_column(default=None)
    categories: Mapped[dict[str, Any]] = mapped_column(default=dict)
    gates: Mapped[dict[str, Any]] = mapped_column(default=dict)
    passed: Mapped[bool] = mapped_column(default=False)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    kind: Mapped[str] = mapped_column(
        String(20), default=RunKind.READINESS.value, server_default=RunKind.READINESS.value
    )


class CheckFindingRow(Base):
    """One check's outcome in a run. Never holds a secret value."""

    __tablename__ = "check_findings"
    __table_args__ = (
        Index("ix_check_findings_run", "run_id"),
        Index("ix_check_findings_check", "check_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("check_runs.id", ondelete="CASCADE"))
    check_id: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(30))
    gate: Mapped[int] = mapped_column()
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")
