"""Enqueue notifications in the store; a dispatcher delivers them later.

``enqueue`` writes one row per channel inside the caller's transaction, so a
state change and the notification about it commit together. The row key is
``<notification key>:<channel>``: enqueueing the same notification twice, from a
retry or a restarted process, adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from controltower.clock import utcnow
from controltower.notify.message import Notification
from controltower.store.models.notify import OutboxMessage


def enqueue(session: Session, notification: Notification, channels: Iterable[str]) -> int:
    """Add ``notification`` for each channel unless already there; return how many were new."""
    now = utcnow()
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    added = 0
    for channel in dict.fromkeys(channels):
        statement = (
            insert(OutboxMessage)
            .values(
                key=f"{notification.key}:{channel}",
                channel=channel,
                kind=notification.kind,
                payload=notification.to_payload(),
                status="pending",
                attempts=0,
                created_at=now,
                next_attempt_at=now,
                last_error="",
                lease_owner="",
            )
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(OutboxMessage.id)
        )
        if session.execute(statement).first() is not None:
            added += 1
    return added
