"""Named leases in the store: one owner at a time, taken over when stale.

A lock row names its owner and when it expires. ``acquire`` takes a free or
expired lock atomically (one conditional UPDATE or INSERT); the holder renews
it while it works and releases it when done. A process that dies simply stops
renewing, and its lock becomes free at ``expires_at``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from controltower.clock import system_clock
from controltower.exceptions import LockHeld
from controltower.store.engine import Store
from controltower.store.models.core import Lock
from controltower.typing import Clock


def default_owner() -> str:
    """``user@host:pid``, enough for a person to find the holder."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class LockInfo:
    name: str
    owner: str
    expired: bool
    detail: dict[str, Any]


class Locks:
    def __init__(self, store: Store, *, clock: Clock = system_clock) -> None:
        self.store = store
        self.clock = clock

    def acquire(
        self, name: str, owner: str, *, ttl: float, detail: dict[str, Any] | None = None
    ) -> bool:
        """Take ``name`` for ``owner`` for ``ttl`` seconds; False if someone else holds it."""
        now = self.clock.now()
        expires = now + timedelta(seconds=ttl)
        with self.store.session() as session:
            result = session.execute(
                update(Lock)
                .where(Lock.name == name)
                .where((Lock.owner == owner) | (Lock.expires_at <= now))
                .values(owner=owner, acquired_at=now, expires_at=expires, detail=detail or {})
            )
            if result.rowcount:  # type: ignore[attr-defined]
                return True
        try:
            with self.store.session() as session:
                session.add(
                    Lock(
                        name=name,
                        owner=owner,
                        acquired_at=now,
                        expires_at=expires,
                        detail=detail or {},
                    )
                )
            return True
        except IntegrityError:
            return False

    def acquire_or_raise(
        self, name: str, owner: str, *, ttl: float, detail: dict[str, Any] | None = None
    ) -> None:
        if not self.acquire(name, owner, ttl=ttl, detail=detail):
            info = self.info(name)
            holder = info.owner if info else "someone else"
            raise LockHeld(
                name,
                holder,
                hint="wait for it to finish, or, if that process is "
                "gone, the lock frees itself when it expires",
            )

    def renew(self, name: str, owner: str, *, ttl: float) -> bool:
        """Extend a lock ``owner`` holds; False if it was lost (expired and taken)."""
        expires = self.clock.now() + timedelta(seconds=ttl)
        with self.store.session() as session:
            result = session.execute(
                update(Lock)
                .where(Lock.name == name, Lock.owner == owner)
                .values(expires_at=expires)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release(self, name: str, owner: str) -> bool:
        with self.store.session() as session:
            result = session.execute(delete(Lock).where(Lock.name == name, Lock.owner == owner))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def break_lock(self, name: str) -> bool:
        """Remove a lock whatever its owner (``tower ... --force-unlock``)."""
        with self.store.session() as session:
            result = session.execute(delete(Lock).where(Lock.name == name))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def info(self, name: str) -> LockInfo | None:
        with self.store.session() as session:
            row = session.scalar(select(Lock).where(Lock.name == name))
            if row is None:
                return None
            return LockInfo(row.name, row.owner, row.expires_at <= self.clock.now(), row.detail)
