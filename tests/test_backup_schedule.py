from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from controltower.backup.run import BackupResult
from controltower.backup.schedule import BackupScheduler, next_run
from controltower.backup.status import RpoWatch, open_incident, rpo_status
from controltower.spec import Spec
from controltower.store import Locks, Store
from controltower.store.models import Backup, OutboxMessage
from controltower.testing import FakeClock
from tests.backup_support import fill, fresh_database, write_spec

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("backup-heavy")]

ALERTS = """
[alerts]
default_channels = ["ops"]

[alerts.channels.ops]
type = "webhook"
url = "http://127.0.0.1:9/hook"
"""


@pytest.fixture
def source(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url) as url:
        fill(url)
        yield url


def _spec(folder: Path, url: str, schedule: str, rpo: str) -> Spec:
    write_spec(folder, url, extra=f'schedule = "{schedule}"')
    text = (folder / "tower.toml").read_text().replace('rpo = "15m"', f'rpo = "{rpo}"')
    (folder / "tower.toml").write_text(text + ALERTS)
    from controltower.spec import load_spec

    return load_spec(folder / "tower.toml", environ={})


class TestNextRun:
    def test_cron_and_every(self) -> None:
        at = datetime(2026, 1, 1, 0, 7, 13, tzinfo=UTC)
        assert next_run("*/15 * * * *", at) == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
        assert next_run("@every 15m", at) == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
        assert next_run("@every 1h", datetime(2026, 1, 1, 1, 0, tzinfo=UTC)) == datetime(
            2026, 1, 1, 2, 0, tzinfo=UTC
        )


class TestScheduler:
    async def test_runs_on_schedule_then_rpo_incident_when_stopped(
        self, source: str, store: Store, tmp_path: Path
    ) -> None:
        """Backups every 15m keep the RPO; once the schedule stops, the RPO incident opens."""
        spec = _spec(tmp_path, source, "@every 15m", "20m")
        clock = FakeClock(datetime(2026, 3, 2, 9, 58, tzinfo=UTC))
        stop = asyncio.Event()
        seen: list[BackupResult | None] = []

        def on_result(result: BackupResult | None, error: str) -> None:
            assert not error, error
            seen.append(result)
            if len(seen) == 3:
                stop.set()

        scheduler = BackupScheduler(spec, store, clock=clock, on_result=on_result)
        await asyncio.wait_for(scheduler.run(stop), timeout=120)
        with store.session() as session:
            rows = session.scalars(
                select(Backup).where(Backup.kind == "database").order_by(Backup.started_at)
            ).all()
            configs = session.scalars(select(Backup).where(Backup.kind == "config")).all()
        assert [r.started_at.strftime("%H:%M") for r in rows] == ["10:00", "10:15", "10:30"]
        assert all(r.status == "ok" for r in rows)
        assert len(configs) == 1  # unchanged configuration is not stored again

        watch = RpoWatch(spec, store, clock=clock)
        assert watch.check().ok
        assert open_incident(store, spec) is None

        clock.advance(21 * 60)  # the schedule is stopped: no backup for longer than the RPO
        status = watch.check()
        assert not status.ok and "older than the RPO 20m" in status.message
        incident = open_incident(store, spec)
        assert incident is not None
        watch.check()  # still breached: no second incident, no second notification
        with store.session() as session:
            outbox = session.scalars(select(OutboxMessage)).all()
        assert [(m.channel, m.kind) for m in outbox] == [("ops", "incident.firing")]

        await BackupScheduler(spec, store, clock=clock).run_once()
        assert watch.check().ok
        assert open_incident(store, spec) is None
        with store.session() as session:
            kinds = sorted(m.kind for m in session.scalars(select(OutboxMessage)))
        assert kinds == ["incident.firing", "incident.resolved"]

    async def test_lease_held_elsewhere_skips(
        self, source: str, store: Store, tmp_path: Path
    ) -> None:
        """When another process holds the backup lease, this one does not back up too."""
        spec = _spec(tmp_path, source, "@every 15m", "20m")
        Locks(store).acquire("backup:shop:default", "other@host:1", ttl=600)
        assert await BackupScheduler(spec, store, owner="me@host:2").run_once() is None
        assert not rpo_status(spec, store).ok
