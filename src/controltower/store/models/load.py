"""Load runs: what each ``tower load`` measured, a sample of its latencies, and baselines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controltower.clock import utcnow
from controltower.store.base import Base, JSONType


class LoadRun(Base):
    """One run. ``sample`` holds up to 10,000 latencies in microseconds for comparisons."""

    __tablename__ = "load_runs"
    __table_args__ = (Index("ix_load_runs_service_started", "service_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    url: Mapped[str] = mapped_column(String(500))
    model: Mapped[str] = mapped_column(String(10))
    passed: Mapped[bool] = mapped_column(default=True)
    interrupted: Mapped[bool] = mapped_column(default=False)
    aborted: Mapped[str] = mapped_column(Text, default="")
    baseline: Mapped[bool] = mapped_column(default=False)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sample: Mapped[list[int]] = mapped_column(JSONType, default=list)
