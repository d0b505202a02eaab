"""Restore drills on a schedule, as part of ``tower serve``'s backup service.

``[backup] verify_schedule`` (cron or ``@every``) restores the newest backup
(a dump into a scratch database; with ``method = "pitr"``, the cluster as of
now into a scratch directory) and checks it, exactly as ``tower backup
verify`` does, under a store lease so several servers drill once. The
achieved RTO is recorded with the verification. A failed drill opens a
``backup_incidents`` row of kind ``verify`` and enqueues one notification in
the same transaction; the next good drill resolves it. ``verify_age`` answers
"how old is the newest verified restore", which ``tower check`` holds
against ``max_verify_age``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select

from controltower.backup import records
from controltower.backup.records import environment_of
from controltower.backup.run import spec_root
from controltower.backup.schedule import on_schedule
from controltower.clock import system_clock
from controltower.exceptions import TowerError
from controltower.notify import Notification, enqueue
from controltower.notify.routing import channels_for
from controltower.spec import Spec
from controltower.store import Locks, Store, default_owner, record_audit
from controltower.store.models.backup import Backup, BackupIncident, BackupVerification
from controltower.typing import Clock
from controltower.units import format_duration

log = structlog.get_logger("controltower.backup")
_LABELS = {"source": "backup", "kind": "verify"}


@dataclass
class DrillOutcome:
    ok: bool
    message: str
    restore_seconds: float | None = None


def verify_age(spec: Spec, store: Store, *, clock: Clock = system_clock) -> float | None:
    """Seconds since the newest successful verification of this service's backups, or None."""
    with store.session() as session:
        service = records.service_of(session, spec)
        newest = session.scalar(
            select(BackupVerification.at)
            .join(Backup, Backup.id == BackupVerification.backup_id)
            .where(Backup.service_id == service, BackupVerification.ok.is_(True))
            .order_by(BackupVerification.at.desc())
            .limit(1)
        )
    return None if newest is None else max(0.0, (clock.now() - newest).total_seconds())


def drill(spec: Spec, store: Store, *, clock: Clock = system_clock) -> DrillOutcome:
    """One restore drill of the newest backup; never raises for a failed restore."""
    try:
        if spec.backup.method == "pitr":
            from controltower.backup import pitr

            result = pitr.verify_to_time(spec, spec_root(spec), None, clock=clock)
            records.record_pitr_verification(spec, store, result, clock=clock, actor="tower serve")
            seconds = result.restore_seconds
            ok = result.ok
            failed = [m for _, good, m in result.findings if not good]
        else:
            from controltower.backup.verify import verify_backup

            verified = verify_backup(spec, store, clock=clock, actor="tower serve")
            seconds, ok = verified.restore_seconds, verified.ok
            failed = [f"{f.name}: {f.message}" for f in verified.findings if not f.ok]
    except TowerError as exc:
        return DrillOutcome(False, str(exc).splitlines()[0])
    if ok:
        return DrillOutcome(True, f"restored and checked in {format_duration(seconds)}", seconds)
    return DrillOutcome(False, "; ".join(failed) or "verification failed", seconds)


class DrillScheduler:
    """Run restore drills on ``[backup] verify_schedule`` until ``stop`` is set."""

    def __init__(
        self,
        spec: Spec,
        store: Store,
        *,
        clock: Clock = system_clock,
        owner: str | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.clock = clock
        self.owner = owner or default_owner()
        self.lock = f"backup-drill:{spec.service.name}:{environment_of(spec)}"

    async def run(self, stop: asyncio.Event) -> None:
        if self.spec.backup.verify_schedule:
            await on_schedule(self.spec.backup.verify_schedule, self.clock, stop, self.run_once)

    async def run_once(self) -> DrillOutcome | None:
        locks = Locks(self.store, clock=self.clock)
        ttl = self.spec.backup.rto + 600
        if not await asyncio.to_thread(locks.acquire, self.lock, self.owner, ttl=ttl):
            return None
        try:
            outcome = await asyncio.to_thread(drill, self.spec, self.store, clock=self.clock)
            await asyncio.to_thread(self.record, outcome)
        finally:
            await asyncio.to_thread(locks.release, self.lock, self.owner)
        log.info("backup.drill", ok=outcome.ok, message=outcome.message)
        return outcome

    def record(self, outcome: DrillOutcome) -> None:
        """Open an incident on a failed drill (notified once), resolve it on a good one."""
        now = self.clock.now()
        with self.store.session() as session:
            service = records.service_of(session, self.spec)
            current = session.scalar(
                select(BackupIncident).where(
                    BackupIncident.service_id == service,
                    BackupIncident.kind == "verify",
                    BackupIncident.resolved_at.is_(None),
                )
            )
            if not outcome.ok and current is None:
                incident = BackupIncident(
                    service_id=service,
                    kind="verify",
                    opened_at=now,
                    detail={"message": outcome.message},
                )
                session.add(incident)
                session.flush()
                enqueue(session, self._note(incident.id, "firing", outcome, now), self._channels())
                record_audit(
                    session,
                    actor="tower serve",
                    action="backup.drill_failed",
                    service=service,
                    subject=self.spec.service.name,
                    detail={"message": outcome.message},
                )
            elif outcome.ok and current is not None:
                current.resolved_at = now
                enqueue(session, self._note(current.id, "resolved", outcome, now), self._channels())

    def _note(
        self, incident_id: int, state: str, outcome: DrillOutcome, at: datetime
    ) -> Notification:
        service = self.spec.service.name
        title = (
            f"{service}: the scheduled restore drill failed"
            if state == "firing"
            else f"{service}: restore drills pass again"
        )
        return Notification(
            key=f"backup:verify:{incident_id}:{state}",
            kind=f"incident.{state}",
            title=title,
            text=outcome.message,
            severity="critical" if state == "firing" else "info",
            service=service,
            environment=environment_of(self.spec),
            fields={"at": at.isoformat(timespec="seconds")},
            labels=dict(_LABELS),
        )

    def _channels(self) -> list[str]:
        return channels_for(self.spec.alerts, severity="critical", labels=dict(_LABELS))
