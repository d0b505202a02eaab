"""The notification outbox: a notification is a row first and a delivery second."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controltower.clock import utcnow
from controltower.store.base import Base


class OutboxMessage(Base):
    """One notification for one channel. ``key`` makes enqueueing idempotent.

    ``unconfirmed`` counts the attempts whose outcome was never known (the sender
    stopped mid-send, or the receiver took the request and never answered) and
    that were sent again to a channel that cannot deduplicate: each one may have
    reached the receiver twice, and said so in the incident's timeline.
    ``in_flight_at`` is when the current attempt's request went out (None while a
    claimed row waits its turn), so a row left in ``sending`` by a dead dispatcher
    tells a send that may have arrived from one that never started.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    channel: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    lease_owner: Mapped[str] = mapped_column(String(200), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    unconfirmed: Mapped[int] = mapped_column(default=0, server_default="0")
    in_flight_at: Mapped[datetime | None] = mapped_column(default=None)
