"""Enqueue notifications in the store; a dispatcher delivers them later.

``enqueue`` writes one row per channel inside the caller's transaction, so a
state change and the notification about it commit together. The row key is
``<notification key>:<channel>``: enqueueing the same notification twice, from a
retry or a restarted process, adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

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


STATUSES = ("pending", "sending", "sent", "failed", "dead")
UNSENT = ("pending", "sending", "failed", "dead")


def list_messages(
    session: Session,
    *,
    statuses: Iterable[str] = UNSENT,
    channel: str | None = None,
    limit: int = 100,
) -> list[OutboxMessage]:
    """Outbox rows in these statuses, oldest first."""
    query = select(OutboxMessage).where(OutboxMessage.status.in_(list(statuses)))
    if channel:
        query = query.where(OutboxMessage.channel == channel)
    query = query.order_by(OutboxMessage.created_at, OutboxMessage.id).limit(limit)
    return list(session.scalars(query).all())


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    ).all()
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: int(count) for status, count in rows})
    return counts


def retry(
    session: Session,
    *,
    ids: Iterable[int] = (),
    dead: bool = False,
    now: datetime | None = None,
) -> int:
    """Make dead or failed rows due now with a fresh attempt count; return how many.

    ``ids`` picks rows; ``dead`` picks every dead row. A row that was sent or is
    being sent is left alone: retrying it could deliver it twice.
    """
    chosen = list(ids)
    conditions: list[ColumnElement[bool]] = []
    if chosen:
        conditions.append(OutboxMessage.id.in_(chosen))
    if dead:
        conditions.append(OutboxMessage.status == "dead")
    if not conditions:
        return 0
    result = session.execute(
        update(OutboxMessage)
        .where(or_(*conditions), OutboxMessage.status.in_(("dead", "failed", "pending")))
        .values(
            status="pending",
            attempts=0,
            next_attempt_at=now or utcnow(),
            lease_owner="",
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
