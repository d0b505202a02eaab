"""Sharing monitors between workers: row leases on ``monitor_state``.

Each worker announces itself with a lock ``monitor-worker:<service>:<owner>``
that it renews; the live workers split the monitors evenly. A worker renews
the leases it holds, gives back what is above its share (claimable by others
after a short hand-off, once its last result is written), and claims free or
expired rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two workers never
claim the same row). A worker that dies stops renewing; its rows expire and
the others take them over. Only the holder of a row's lease checks it.

A worker's name is stable across restarts (``worker_name``: host, service,
environment and spec file), so a worker restarted after a crash finds its own
unexpired leases and goes on at once. The lease TTL follows the shortest
monitor interval (``lease_ttl_for``: half of it, 1 s to 15 s) and is renewed
three times per TTL, so a dead worker's monitors are free within two thirds of
an interval and taken over at the next renewal of a live one.
"""

from __future__ import annotations

import hashlib
import math
import socket
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, or_, select, update

from controltower.clock import system_clock
from controltower.store import Locks, Store
from controltower.store.models.core import Lock
from controltower.store.models.monitor import MonitorState
from controltower.typing import Clock

MIN_TTL = 1.0
MAX_TTL = 15.0


def worker_name(service: str, environment: str | None, spec_source: str) -> str:
    """The default worker name: the same for every run of this spec on this host."""
    path = str(Path(spec_source).resolve()) if spec_source else ""
    digest = hashlib.sha256(path.encode()).hexdigest()[:8]
    return f"{socket.gethostname()}:{service}:{environment or 'default'}:{digest}"


def lease_ttl_for(intervals: Iterable[float]) -> float:
    """Half the shortest interval, within 1 s and 15 s."""
    shortest = min(intervals, default=2 * MAX_TTL)
    return min(MAX_TTL, max(MIN_TTL, shortest / 2))


class MonitorLeases:
    def __init__(
        self,
        store: Store,
        service_id: int,
        owner: str,
        *,
        ttl: float = 15.0,
        handoff: float = 1.0,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.service_id = service_id
        self.owner = owner
        self.ttl = ttl
        self.handoff = handoff
        self.clock = clock
        self.locks = Locks(store, clock=clock)
        self.prefix = f"monitor-worker:{service_id}:"

    def sync(self, ids: set[int]) -> set[int]:
        """Renew, balance and claim; return the ids of the monitors this worker now holds."""
        now = self.clock.now()
        expires = now + timedelta(seconds=self.ttl)
        self.locks.acquire(self.prefix + self.owner, self.owner, ttl=self.ttl)
        with self.store.session() as session:
            live = session.scalar(
                select(func.count())
                .select_from(Lock)
                .where(Lock.name.startswith(self.prefix), Lock.expires_at > now)
            )
            share = math.ceil(len(ids) / max(int(live or 1), 1))
            held = set(
                session.scalars(
                    select(MonitorState.id).where(
                        MonitorState.service_id == self.service_id,
                        MonitorState.lease_owner == self.owner,
                        MonitorState.lease_expires_at > now,
                    )
                )
            )
            stale = held - ids
            held &= ids
            extras = sorted(held)[share:] if len(held) > share else []
            give_back = stale | set(extras)
            if give_back:
                # Free, but claimable only after ``handoff``: by then this worker has
                # flushed its last result and the monitor's next due time, so the
                # next holder keeps the beat instead of checking again at once.
                session.execute(
                    update(MonitorState)
                    .where(MonitorState.id.in_(give_back), MonitorState.lease_owner == self.owner)
                    .values(lease_owner="", lease_expires_at=now + timedelta(seconds=self.handoff))
                )
                held -= give_back
            if held:
                session.execute(
                    update(MonitorState)
                    .where(MonitorState.id.in_(held), MonitorState.lease_owner == self.owner)
                    .values(lease_expires_at=expires)
                )
            need = share - len(held)
            if need > 0:
                free = or_(
                    MonitorState.lease_expires_at.is_(None), MonitorState.lease_expires_at <= now
                )
                query = (
                    select(MonitorState.id)
                    .where(
                        MonitorState.service_id == self.service_id, MonitorState.id.in_(ids), free
                    )
                    .order_by(MonitorState.id)
                    .limit(need)
                )
                if self.store.is_postgres:
                    query = query.with_for_update(skip_locked=True)
                candidates = list(session.scalars(query))
                if candidates:
                    session.execute(
                        update(MonitorState)
                        .where(MonitorState.id.in_(candidates), free)
                        .values(lease_owner=self.owner, lease_expires_at=expires)
                    )
            mine = set(
                session.scalars(
                    select(MonitorState.id).where(
                        MonitorState.service_id == self.service_id,
                        MonitorState.lease_owner == self.owner,
                    )
                )
            )
        return mine & ids

    def release(self) -> None:
        """Give everything back now (a clean shutdown), so others need not wait for expiry."""
        with self.store.session() as session:
            session.execute(
                update(MonitorState)
                .where(MonitorState.lease_owner == self.owner)
                .values(lease_owner="", lease_expires_at=None)
            )
        self.locks.release(self.prefix + self.owner, self.owner)
