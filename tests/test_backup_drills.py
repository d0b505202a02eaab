from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from controltower.backup import run_backup
from controltower.backup.drills import DrillScheduler, verify_age
from controltower.checks.base import CheckContext
from controltower.checks.model import Status
from controltower.checks.static.backup import RecentRestore
from controltower.store import Store
from controltower.store.models import BackupIncident
from controltower.store.models.notify import OutboxMessage as Outbox
from tests.backup_support import fill, fresh_database, write_spec

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("backup-heavy")]


@pytest.fixture
def source(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url) as url:
        fill(url)
        yield url


class TestDrills:
    def test_failed_drill_opens_one_incident_and_a_good_one_resolves_it(
        self, source: str, store: Store, tmp_path: Path
    ) -> None:
        """A corrupted archive fails the scheduled drill: one incident, one notification,
        however many drills fail; the next good drill resolves it and records the RTO."""
        spec = write_spec(
            tmp_path,
            source,
            extra='verify_schedule = "@every 1h"',
            tail='[alerts]\ndefault_channels = ["hook"]\n\n[alerts.channels.hook]\n'
            'type = "webhook"\nurl = "http://127.0.0.1:9/hook"\n',
        )
        result = run_backup(spec, store)
        dump = tmp_path / "backups" / "shop" / f"{result.name}.dump"
        data = bytearray(dump.read_bytes())
        data[len(data) // 2] ^= 0xFF
        dump.write_bytes(bytes(data))
        drills = DrillScheduler(spec, store)
        first = asyncio.run(drills.run_once())
        second = asyncio.run(drills.run_once())
        assert first is not None and not first.ok and "corrupt" in first.message
        assert second is not None and not second.ok
        with store.session() as session:
            incidents = session.scalars(select(BackupIncident)).all()
            assert [(i.kind, i.resolved_at) for i in incidents] == [("verify", None)]
            keys = [row.key for row in session.scalars(select(Outbox))]
        assert len([k for k in keys if k.startswith("backup:verify:") and ":firing" in k]) == 1
        assert verify_age(spec, store) is None

        run_backup(spec, store)
        good = asyncio.run(drills.run_once())
        assert good is not None and good.ok and good.restore_seconds is not None
        with store.session() as session:
            incident = session.scalars(select(BackupIncident)).one()
            assert incident.resolved_at is not None
            keys = [row.key for row in session.scalars(select(Outbox))]
        assert any(":resolved" in k for k in keys)
        age = verify_age(spec, store)
        assert age is not None and age < 120

    def test_check_fails_gate_two_without_a_recent_verified_restore(
        self, source: str, tmp_path: Path
    ) -> None:
        """backup.verified fails with no verified restore, passes after one."""
        spec = write_spec(tmp_path, source, extra='max_verify_age = "1d"')
        ctx = CheckContext(spec=spec, root=tmp_path)
        outcome = asyncio.run(RecentRestore().run(ctx))
        assert outcome.status is Status.FAIL and "no backup restore" in outcome.message
        with Store.for_spec(spec) as store:
            run_backup(spec, store)
            assert asyncio.run(DrillScheduler(spec, store).run_once()) is not None
        outcome = asyncio.run(RecentRestore().run(ctx))
        assert outcome.status is Status.PASS, outcome.message
