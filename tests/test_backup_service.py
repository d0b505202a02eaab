"""Backups inside `tower serve`, heartbeats to tower's own monitors, and what a stopped schedule raises."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from controltower.backup import run_backup
from controltower.backup.heartbeat import ping
from controltower.backup.schedule import BackupScheduler
from controltower.backup.service import BackupService, backup_service
from controltower.backup.status import RpoWatch, open_incident
from controltower.exceptions import SpecError
from controltower.monitor.heartbeat import last_ping
from controltower.monitor.registry import sync_monitors
from controltower.server import services
from controltower.server.app import create_app
from controltower.server.context import ServerContext
from controltower.spec import Spec, load_spec
from controltower.store import Store
from controltower.store.models import Backup, Incident
from controltower.testing import FakeClock
from tests.backup_support import fill, fresh_database, write_spec
from tests.monitor_support import running

HEARTBEAT_MONITOR = """
[[monitors]]
name = "backups"
type = "heartbeat"
interval = "{interval}"
grace = "{grace}"
failure_threshold = 1
"""


@pytest.fixture
def source(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url) as url:
        fill(url)
        yield url


def _spec(folder: Path, url: str, *, backup: str = "", monitors: str = "") -> Spec:
    write_spec(folder, url, extra=backup, tail=monitors)
    return load_spec(folder / "tower.toml", environ={})


class TestHeartbeatPing:
    def test_named_monitor_records_the_ping(self, store: Store, tmp_path: Path) -> None:
        """A monitor name as the heartbeat records up and fail pings in the store."""
        spec = _spec(
            tmp_path,
            "postgresql://u@h/db",
            backup='heartbeat = "backups"',
            monitors=HEARTBEAT_MONITOR.format(interval="15m", grace="5m"),
        )
        clock = FakeClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
        assert ping(spec.backup.heartbeat, ok=True, spec=spec, store=store, clock=clock) == ""
        _service, ids = sync_monitors(store, spec)
        assert last_ping(store, ids["backups"])[:2] == (clock.now(), "up")
        clock.advance(60)
        assert ping(spec.backup.heartbeat, ok=False, spec=spec, store=store, clock=clock) == ""
        assert last_ping(store, ids["backups"])[:2] == (clock.now(), "fail")

    def test_unknown_monitor_is_refused_at_load(self, tmp_path: Path) -> None:
        """A name that is no heartbeat monitor is a spec error naming the ones there are."""
        with pytest.raises(SpecError) as caught:
            _spec(
                tmp_path,
                "postgresql://u@h/db",
                backup='heartbeat = "nightly"',
                monitors=HEARTBEAT_MONITOR.format(interval="15m", grace="5m"),
            )
        assert '"nightly" is not a heartbeat monitor (heartbeat monitors: backups)' in str(
            caught.value
        )

    def test_disabled_monitor_is_explained(self, store: Store, tmp_path: Path) -> None:
        """A heartbeat monitor switched off takes no pings, and the message says so."""
        spec = _spec(
            tmp_path,
            "postgresql://u@h/db",
            backup='heartbeat = "backups"',
            monitors=HEARTBEAT_MONITOR.format(interval="15m", grace="5m") + "enabled = false\n",
        )
        message = ping(spec.backup.heartbeat, ok=True, spec=spec, store=store)
        assert message == (
            "[backup] heartbeat 'backups' is not an enabled heartbeat monitor of this "
            "tower.toml (heartbeat monitors: backups)"
        )

    def test_url_answering_an_error(self, httpserver: HTTPServer) -> None:
        """A heartbeat URL that answers 5xx is reported, not raised."""
        httpserver.expect_request("/hb/fail").respond_with_data("no", status=503)
        message = ping(httpserver.url_for("/hb"), ok=False)
        assert message == f"heartbeat {httpserver.url_for('/hb/fail')} answered 503"

    def test_bad_heartbeat_is_refused_at_load(self, tmp_path: Path) -> None:
        """Neither a URL nor a monitor name: tower.toml does not load."""
        from controltower.exceptions import SpecError

        with pytest.raises(SpecError, match="must be an http\\(s\\) URL to ping or the name"):
            _spec(tmp_path, "postgresql://u@h/db", backup='heartbeat = "ftp://x/y"')


@pytest.mark.postgres
@pytest.mark.xdist_group("backup-heavy")
class TestBackupPingsTheMonitor:
    def test_every_backup_pings(self, source: str, store: Store, tmp_path: Path) -> None:
        """A good backup is an up ping of the named monitor; a failed one a fail ping."""
        spec = _spec(
            tmp_path,
            source,
            backup='heartbeat = "backups"',
            monitors=HEARTBEAT_MONITOR.format(interval="15m", grace="5m"),
        )
        clock = FakeClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
        result = run_backup(spec, store, clock=clock)
        assert result.heartbeat_error == ""
        _service, ids = sync_monitors(store, spec)
        assert last_ping(store, ids["backups"])[:2] == (clock.now(), "up")
        clock.advance(900)
        with pytest.raises(Exception, match="cannot connect"):
            run_backup(spec, store, clock=clock, url=source + "_gone")
        assert last_ping(store, ids["backups"])[:2] == (clock.now(), "fail")


@pytest.mark.postgres
@pytest.mark.xdist_group("backup-heavy")
class TestInsideServe:
    def test_factory(self, tmp_path: Path) -> None:
        """No database to back up, no service; one to back up, a service named backup."""
        with Store.open(f"sqlite:///{tmp_path / 'tower.db'}") as store:
            bare = load_spec(_write(tmp_path, '[service]\nname = "shop"\n'), environ={})
            assert backup_service(ServerContext.build(store, bare)) is None
            spec = _spec(tmp_path, "postgresql://u@h/db")
            service = backup_service(ServerContext.build(store, spec))
            assert isinstance(service, BackupService) and service.name == "backup"
            assert isinstance(service, services.Service)

    async def test_serve_runs_scheduled_backups(
        self, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The server runs the backup service by itself: backups on schedule until shutdown."""
        spec = _spec(tmp_path, source, backup='schedule = "@every 1s"')
        monkeypatch.setattr(services, "_factories", {})
        with Store.open(f"sqlite:///{tmp_path / 'tower.db'}") as store:
            off = create_app(ServerContext.build(store, spec, backups=False))
            async with off.router.lifespan_context(off):
                assert "backup" not in off.state.runner.running
            app = create_app(ServerContext.build(store, spec))
            async with app.router.lifespan_context(app):
                assert app.state.runner.running.count("backup") == 1
                good = await _async_eventually(lambda: _count(store, "ok") >= 2, within=60)
                assert good, "no scheduled backups within 60s"
            stopped = _count(store, None)
            await asyncio.sleep(2.5)
            assert _count(store, None) == stopped  # shutdown stopped the schedule
            with store.session() as session:
                rows = session.scalars(select(Backup).where(Backup.kind == "database")).all()
            assert all(row.status == "ok" for row in rows)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("backup-heavy")
class TestStoppedSchedule:
    async def test_stopping_backups_raises_both_incidents(
        self, source: str, tmp_path: Path
    ) -> None:
        """Real time: while backups run nothing fires; once they stop, the heartbeat
        monitor opens an incident, the RPO watch opens its own, and `tower backup status`
        exits 1."""
        spec = _spec(
            tmp_path,
            source,
            backup='heartbeat = "backups"\nschedule = "@every 1s"',
            monitors=HEARTBEAT_MONITOR.format(interval="2s", grace="4s"),
        )
        text = (tmp_path / "tower.toml").read_text().replace('rpo = "15m"', 'rpo = "6s"')
        (tmp_path / "tower.toml").write_text(text)
        spec = load_spec(tmp_path / "tower.toml", environ={})
        with Store.open(f"sqlite:///{tmp_path / '.tower' / 'tower.db'}") as store:
            async with running(spec, store):
                backups, watching = asyncio.Event(), asyncio.Event()
                scheduler = asyncio.create_task(BackupScheduler(spec, store).run(backups))
                watcher = asyncio.create_task(RpoWatch(spec, store, interval=0.5).run(watching))
                try:
                    assert await _async_eventually(lambda: _count(store, "ok") >= 3, within=60)
                    assert _open_incidents(store) == []
                    assert open_incident(store, spec) is None

                    backups.set()  # the schedule stops; the monitors keep watching
                    await asyncio.wait_for(scheduler, 60)
                    assert await _async_eventually(lambda: _open_incidents(store), within=60)
                    assert await _async_eventually(
                        lambda: open_incident(store, spec) is not None, within=60
                    )
                finally:
                    backups.set()
                    watching.set()
                    await asyncio.wait_for(asyncio.gather(scheduler, watcher), 60)
            incident = _open_incidents(store)[0]
            assert incident.monitors == ["backups"] and incident.status == "firing"
        done = subprocess.run(
            [sys.executable, "-m", "controltower", "backup", "status", "--spec", str(spec.source)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert "RPO BREACHED" in done.stdout and "older than the RPO 6s" in done.stdout


def _write(folder: Path, text: str) -> Path:
    path = folder / "bare.toml"
    path.write_text(text)
    return path


def _count(store: Store, status: str | None) -> int:
    with store.session() as session:
        query = select(Backup).where(Backup.kind == "database")
        if status:
            query = query.where(Backup.status == status)
        return len(session.scalars(query).all())


def _open_incidents(store: Store) -> list[Incident]:
    with store.session() as session:
        return list(
            session.scalars(
                select(Incident).where(Incident.open_key.is_not(None), Incident.status == "firing")
            )
        )


def _eventually(predicate: object, *, within: float) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + within
    delay = 0.1
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    return bool(predicate())


async def _async_eventually(predicate: object, *, within: float) -> bool:
    return await asyncio.to_thread(_eventually, predicate, within=within)
