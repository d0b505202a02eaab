"""Backups as a background service of ``tower serve``: the schedule, the RPO watch, the drills.

``BackupService`` has the shape of ``controltower.server.services.Service``
(a ``name`` and ``async run(stop)``): it runs ``BackupScheduler`` (backups on
``[backup] schedule``, under a store lease so several servers back up once)
beside ``RpoWatch`` (an incident when the newest good backup is older than
the RPO) until ``stop`` is set. ``backup_service`` is the factory
``tower serve`` registers::

    from controltower.backup.service import backup_service
    from controltower.server.services import register_service

    register_service("backup", backup_service)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from controltower.backup.drills import DrillScheduler
from controltower.backup.schedule import BackupScheduler
from controltower.backup.status import RpoWatch
from controltower.clock import system_clock
from controltower.spec import Spec
from controltower.store import Store
from controltower.typing import Clock

if TYPE_CHECKING:
    from controltower.server.context import ServerContext

log = structlog.get_logger("controltower.backup")


class BackupService:
    """Scheduled backups and the RPO watch, together, until ``stop`` is set."""

    name = "backup"

    def __init__(
        self,
        spec: Spec,
        store: Store,
        *,
        clock: Clock = system_clock,
        owner: str | None = None,
        watch_interval: float = 0.0,
    ) -> None:
        self.scheduler = BackupScheduler(spec, store, clock=clock, owner=owner)
        self.watch = RpoWatch(spec, store, clock=clock, interval=watch_interval)
        self.drills = DrillScheduler(spec, store, clock=clock, owner=owner)

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "backup.service.start",
            schedule=self.scheduler.spec.backup.schedule or "none",
            rpo=self.scheduler.spec.backup.rpo,
        )
        await asyncio.gather(self.scheduler.run(stop), self.watch.run(stop), self.drills.run(stop))


def wanted(spec: Spec) -> bool:
    """Whether the spec backs up a database (without a schedule, only the RPO is watched)."""
    url = spec.backup.database_url
    return bool(url and url.get_secret_value())


def backup_service(context: ServerContext) -> BackupService | None:
    """The factory for ``register_service``: None when the spec backs up no database."""
    spec = context.spec
    if spec is None or not wanted(spec):
        return None
    return BackupService(spec, context.store, clock=context.clock)
