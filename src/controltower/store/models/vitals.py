"""Web-vitals beacons from browsers: one row per metric of a page load (its last value)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controltower.store.base import Base


class VitalName(StrEnum):
    """The metrics of the ``web-vitals`` library (FID: versions before 5)."""

    LCP = "LCP"
    INP = "INP"
    CLS = "CLS"
    FCP = "FCP"
    TTFB = "TTFB"
    FID = "FID"


VITAL_NAMES = tuple(v.value for v in VitalName)


class WebVital(Base):
    """A metric as a page load last reported it. ``metric_id`` is web-vitals' ``id``
    (unique per page load and metric), so a later report of the same metric replaces
    the value instead of counting twice. ``value`` is milliseconds, CLS unitless."""

    __tablename__ = "web_vitals"
    __table_args__ = (
        UniqueConstraint("project_id", "name", "metric_id", name="uq_web_vitals_metric"),
        Index("ix_web_vitals_project_received", "project_id", "received_at"),
        Index("ix_web_vitals_release_received", "release", "received_at"),
        CheckConstraint(
            "name IN (" + ", ".join(f"'{n}'" for n in VITAL_NAMES) + ")",
            name="ck_web_vitals_name",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("ingest_projects.id", ondelete="CASCADE"))
    metric_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(8))
    value: Mapped[float]
    rating: Mapped[str] = mapped_column(String(20), default="")
    navigation_type: Mapped[str] = mapped_column(String(30), default="")
    page: Mapped[str] = mapped_column(String(300), default="")
    release: Mapped[str] = mapped_column(String(200), default="")
    received_at: Mapped[datetime]
