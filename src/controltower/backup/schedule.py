"""Backups on a schedule, as a background service of ``tower serve``.

``[backup] schedule`` is a cron expression (``*/15 * * * *``) or ``@every 15m``.
Each run takes a lease in the store first, so several tower processes sharing
one store back up once, not once each. After a good backup the configuration
is backed up too (a new version only if it changed) and retention is applied.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog
from croniter import croniter

from controltower.backup.config import run_config_backup
from controltower.backup.records import environment_of
from controltower.backup.retention import prune
from controltower.backup.run import BackupResult, run_backup
from controltower.backup.status import _wait
from controltower.clock import system_clock
from controltower.exceptions import TowerError
from controltower.spec import Spec
from controltower.store import Locks, Store, default_owner
from controltower.typing import Clock
from controltower.units import parse_duration

log = structlog.get_logger("controltower.backup")
_EVERY = re.compile(r"^@every\s+(\S+)$")


def next_run(schedule: str, after: datetime) -> datetime:
    """When ``schedule`` fires next, strictly after ``after``."""
    every = _EVERY.match(schedule.strip())
    if every:
        step = parse_duration(every.group(1))
        epoch = datetime(1970, 1, 1, tzinfo=after.tzinfo)
        elapsed = (after - epoch).total_seconds()
        return epoch + timedelta(seconds=(elapsed // step + 1) * step)
    following: datetime = croniter(schedule, after).get_next(datetime)
    return following


async def on_schedule(
    schedule: str,
    clock: Clock,
    stop: asyncio.Event,
    once: Callable[[], Awaitable[object]],
) -> None:
    """Call ``once`` each time ``schedule`` fires, until ``stop`` is set."""
    while not stop.is_set():
        due = next_run(schedule, clock.now())
        while not stop.is_set():
            left = (due - clock.now()).total_seconds()
            if left <= 0:
                break
            await _wait(clock, left, stop)
        if stop.is_set():
            return
        await once()


class BackupScheduler:
    """Run ``[backup]`` on its schedule until ``stop`` is set."""

    def __init__(
        self,
        spec: Spec,
        store: Store,
        *,
        clock: Clock = system_clock,
        owner: str | None = None,
        config: bool = True,
        on_result: Callable[[BackupResult | None, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.clock = clock
        self.owner = owner or default_owner()
        self.config = config
        self.on_result = on_result
        self.lock = f"backup:{spec.service.name}:{environment_of(spec)}"

    async def run(self, stop: asyncio.Event) -> None:
        schedule = self.spec.backup.schedule
        if not schedule:
            log.info("backup.schedule.none", service=self.spec.service.name)
            return
        await on_schedule(schedule, self.clock, stop, self.run_once)

    async def run_once(self) -> BackupResult | None:
        """One scheduled run: database backup, configuration version, retention."""
        locks = Locks(self.store, clock=self.clock)
        taken = await asyncio.to_thread(
            locks.acquire, self.lock, self.owner, ttl=self.spec.backup.timeout
        )
        if not taken:
            log.info("backup.skipped", reason="another process holds the backup lease")
            return None
        result: BackupResult | None = None
        error = ""
        try:
            if self.spec.backup.method == "pitr":
                from controltower.backup import pitr
                from controltower.backup.run import spec_root

                result = await asyncio.to_thread(
                    pitr.record_backup,
                    self.spec,
                    self.store,
                    spec_root(self.spec),
                    clock=self.clock,
                )
            else:
                result = await asyncio.to_thread(
                    run_backup, self.spec, self.store, clock=self.clock, actor="tower serve"
                )
            log.info("backup.ok", name=result.name, size=result.size, duration=result.duration)
            if self.config:
                try:
                    await asyncio.to_thread(
                        run_config_backup, self.spec, self.store, clock=self.clock
                    )
                except TowerError as exc:
                    log.warning("backup.config.failed", error=str(exc))
            if self.spec.backup.method != "pitr":  # pgBackRest expires its own sets
                await asyncio.to_thread(prune, self.spec, self.store, clock=self.clock)
        except TowerError as exc:
            error = str(exc)
            log.error("backup.failed", error=error)
        finally:
            await asyncio.to_thread(locks.release, self.lock, self.owner)
        if self.on_result:
            self.on_result(result, error)
        return result
