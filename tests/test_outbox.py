from __future__ import annotations

from sqlalchemy import select

from controltower.notify import Notification, enqueue
from controltower.store import Store
from controltower.store.models import OutboxMessage


class TestEnqueue:
    def test_one_row_per_channel(self, store: Store) -> None:
        note = Notification(key="incident:1:firing", kind="incident.firing", title="api down")
        with store.session() as session:
            assert enqueue(session, note, ["slack", "email", "slack"]) == 2
        with store.session() as session:
            rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.channel)).all()
        assert [(r.channel, r.key, r.status) for r in rows] == [
            ("email", "incident:1:firing:email", "pending"),
            ("slack", "incident:1:firing:slack", "pending"),
        ]
        assert Notification.from_payload(rows[0].payload) == note

    def test_idempotent(self, store: Store) -> None:
        """Enqueueing the same notification again, even from another session, adds nothing."""
        note = Notification(key="deploy:r7:started", kind="deploy.started", title="deploying r7")
        with store.session() as session:
            enqueue(session, note, ["slack"])
        with store.session() as session:
            assert enqueue(session, note, ["slack"]) == 0
            assert len(session.scalars(select(OutboxMessage)).all()) == 1

    def test_rolls_back_with_the_state_change(self, store: Store) -> None:
        """A failed transaction leaves no notification behind."""
        note = Notification(key="k", kind="incident.firing", title="t")
        try:
            with store.session() as session:
                enqueue(session, note, ["slack"])
                raise RuntimeError("state change failed")
        except RuntimeError:
            pass
        with store.session() as session:
            assert session.scalars(select(OutboxMessage)).all() == []
