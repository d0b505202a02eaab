"""Is the newest good backup within the RPO? Answered on demand and watched over time.

``rpo_status`` answers once. ``RpoWatch`` is a background service for
``tower serve``: when the newest good backup grows older than the RPO it opens
a backup incident (a row) and enqueues a notification; when a fresh backup
arrives it resolves it. The state lives in the store, so a restart neither
loses an open incident nor raises it twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from controltower.backup import records
from controltower.clock import system_clock
from controltower.notify import Notification, enqueue
from controltower.notify.routing import channels_for
from controltower.spec import Spec
from controltower.store import Store, record_audit
from controltower.store.models.backup import BackupIncident
from controltower.typing import Clock
from controltower.units import format_duration


@dataclass
class RpoStatus:
    ok: bool
    rpo: float
    newest: str | None
    newest_at: datetime | None
    age: float | None
    verified: bool | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["newest_at"] = self.newest_at.isoformat() if self.newest_at else None
        return out


def rpo_status(spec: Spec, store: Store, *, clock: Clock = system_clock) -> RpoStatus:
    """Whether the newest good database backup is younger than the RPO."""
    good = records.rows(store, spec, kind="database", status="ok")
    rpo = spec.backup.rpo
    if not good:
        return RpoStatus(
            False, rpo, None, None, None, None, f"no good backup yet (RPO {format_duration(rpo)})"
        )
    newest = good[0]
    at = newest.finished_at or newest.started_at
    age = max(0.0, (clock.now() - at).total_seconds())
    ok = age <= rpo
    relation = "within" if ok else "older than"
    message = (
        f"newest backup {newest.name} is {format_duration(age)} old, "
        f"{relation} the RPO {format_duration(rpo)}"
    )
    return RpoStatus(ok, rpo, newest.name, at, round(age, 3), newest.verify_ok, message)


def open_incident(store: Store, spec: Spec) -> BackupIncident | None:
    with store.session() as session:
        return session.scalar(
            select(BackupIncident).where(
                BackupIncident.service_id == records.service_of(session, spec),
                BackupIncident.kind == "rpo",
                BackupIncident.resolved_at.is_(None),
            )
        )


class RpoWatch:
    """Raise an incident when backups fall behind the RPO; resolve it when they catch up."""

    def __init__(
        self, spec: Spec, store: Store, *, clock: Clock = system_clock, interval: float = 0.0
    ) -> None:
        self.spec = spec
        self.store = store
        self.clock = clock
        self.interval = interval or min(60.0, max(1.0, spec.backup.rpo / 4))

    def check(self) -> RpoStatus:
        """Evaluate once and move the incident to match; returns the status seen."""
        status = rpo_status(self.spec, self.store, clock=self.clock)
        current = open_incident(self.store, self.spec)
        if not status.ok and current is None:
            self._open(status)
        elif status.ok and current is not None:
            self._resolve(current.id, status)
        return status

    def _notification(self, incident_id: int, state: str, status: RpoStatus) -> Notification:
        service = self.spec.service.name
        title = (
            f"{service}: backups are older than the RPO"
            if state == "firing"
            else f"{service}: backups are within the RPO again"
        )
        return Notification(
            key=f"backup:rpo:{incident_id}:{state}",
            kind=f"incident.{state}",
            title=title,
            text=status.message,
            severity="critical" if state == "firing" else "info",
            service=service,
            environment=records.environment_of(self.spec),
            fields={"rpo": format_duration(status.rpo), "newest": status.newest or "none"},
            labels={"source": "backup", "kind": "rpo"},
        )

    def _channels(self) -> list[str]:
        return channels_for(
            self.spec.alerts, severity="critical", labels={"source": "backup", "kind": "rpo"}
        )

    def _open(self, status: RpoStatus) -> None:
        with self.store.session() as session:
            incident = BackupIncident(
                service_id=records.service_of(session, self.spec),
                kind="rpo",
                opened_at=self.clock.now(),
                detail=status.to_dict(),
            )
            session.add(incident)
            session.flush()
            enqueue(session, self._notification(incident.id, "firing", status), self._channels())
            record_audit(
                session,
                actor="tower",
                action="backup.rpo_breached",
                service=incident.service_id,
                subject=status.newest or "",
                detail={"message": status.message},
            )

    def _resolve(self, incident_id: int, status: RpoStatus) -> None:
        with self.store.session() as session:
            incident = session.get(BackupIncident, incident_id)
            assert incident is not None
            incident.resolved_at = self.clock.now()
            enqueue(session, self._notification(incident_id, "resolved", status), self._channels())

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.check)
            await _wait(self.clock, self.interval, stop)


async def _wait(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    """Sleep on ``clock`` for ``seconds`` or until ``stop`` is set, whichever is first."""
    sleeper = asyncio.ensure_future(clock.asleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            task.cancel()
