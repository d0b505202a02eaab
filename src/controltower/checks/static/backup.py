"""Backups in the readiness audit: restores proven recently, and the RPO achieved by PITR."""

from __future__ import annotations

import asyncio

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import Category, Gate, Outcome, Severity, failed, passed, skipped
from controltower.exceptions import TowerError
from controltower.units import format_duration


def _backs_up(ctx: CheckContext) -> bool:
    url = ctx.spec.backup.database_url
    return bool(url and url.get_secret_value())


@register
class RecentRestore(Check):
    """A backup restore was verified (scratch restore, row counts, checks) within
    [backup] max_verify_age: a backup never restored is a hope."""

    id = "backup.verified"
    title = "A verified restore is recent"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    kind = "live"
    remedy = (
        "Run tower backup verify, and set [backup] verify_schedule so tower serve drills restores."
    )

    async def run(self, ctx: CheckContext) -> Outcome:
        if not _backs_up(ctx):
            return skipped("no [backup] database_url: nothing is backed up")
        from controltower.backup.drills import verify_age
        from controltower.store import Store

        def age() -> float | None:
            with Store.for_spec(ctx.spec) as store:
                return verify_age(ctx.spec, store, clock=ctx.clock)

        try:
            seconds = await asyncio.to_thread(age)
        except TowerError as exc:
            return skipped(f"the store cannot be read: {str(exc).splitlines()[0]}")
        limit = ctx.spec.backup.max_verify_age
        if seconds is None:
            return failed(
                f"no backup restore has been verified (max_verify_age {format_duration(limit)})"
            )
        if seconds > limit:
            return failed(
                f"the newest verified restore is {format_duration(seconds)} old, older than "
                f"max_verify_age {format_duration(limit)}"
            )
        return passed(
            f"a restore was verified {format_duration(seconds)} ago", age=round(seconds, 1)
        )


@register
class ArchivedWal(Check):
    """With method = "pitr", WAL is archived and the changes not yet archived are younger
    than [backup] rpo (read from pg_stat_archiver of the live database)."""

    id = "backup.rpo"
    title = "Point-in-time recovery meets the RPO"
    category = Category.RELIABILITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    kind = "live"
    remedy = "Run tower backup setup and fix archive_command until tower backup status passes."

    async def run(self, ctx: CheckContext) -> Outcome:
        if not _backs_up(ctx) or ctx.spec.backup.method != "pitr":
            return skipped('only for [backup] method = "pitr"')
        from controltower.backup.pitr import archive_status

        try:
            status = await asyncio.to_thread(archive_status, ctx.spec, clock=ctx.clock)
        except TowerError as exc:
            return failed(f"cannot read the archive status: {str(exc).splitlines()[0]}")
        if status.ok:
            return passed(status.message, age=status.age)
        return failed(status.message)
