"""Point-in-time recovery with the real pgBackRest on a real PostgreSQL cluster made for the test."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from controltower.backup import pitr, records
from controltower.backup.drills import DrillScheduler, verify_age
from controltower.backup.schedule import BackupScheduler
from controltower.checks.base import CheckContext
from controltower.checks.model import Status
from controltower.checks.static.backup import RecentRestore
from controltower.exceptions import BackupError
from controltower.spec import load_spec
from controltower.store import Store
from tests.conftest import unavailable
from tests.pitr_support import Cluster, Writer, pg_bin, private_cluster, restored_rows

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.xdist_group("backup-pitr")]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bin_dir = pg_bin()
    if bin_dir is None:
        unavailable(
            "PostgreSQL server binaries and pgbackrest are needed", "TOWER_REQUIRE_POSTGRES"
        )
    assert bin_dir is not None
    with private_cluster(bin_dir) as made:
        yield made


class TestBuilders:
    def test_config_and_restore_arguments(self, tmp_path: Path) -> None:
        """The config names the stanza, data directory and repository; restore is by time."""
        spec_path = tmp_path / "tower.toml"
        spec_path.write_text(
            '[service]\nname = "shop"\n\n[backup]\nmethod = "pitr"\n\n'
            '[backup.pitr]\npg_data = "/var/lib/postgresql/15/main"\n\n'
            '[backup.destination]\ntype = "s3"\nendpoint = "http://127.0.0.1:9000"\n'
            'bucket = "b"\nprefix = "prod"\n'
        )
        spec = load_spec(spec_path, environ={})
        config = pitr.Pitr.from_spec(spec, tmp_path)
        text = pitr.config_text(config)
        assert "[shop]\npg1-path=/var/lib/postgresql/15/main" in text
        assert "repo1-type=s3" in text and "repo1-s3-uri-style=path" in text
        assert "repo1-path=/prod/pgbackrest" in text and "repo1-storage-port=9000" in text
        assert "key" not in text.replace("repo1-s3-", "")
        when = datetime(2026, 12, 1, 10, 42, tzinfo=UTC)
        args = pitr.restore_args(config, Path("/restore"), when)
        assert "--type=time" in args and "--target=2026-12-01 10:42:00+00:00" in args
        assert "--archive-mode=off" in args and "--target-action=promote" in args
        assert pitr.archive_command(config).endswith("--stanza=shop archive-push %p")
        latest = pitr.restore_args(config, Path("/restore"), None)
        assert "--archive-mode=off" in latest
        assert not [a for a in latest if a.startswith(("--type", "--target"))]

    def test_pitr_without_a_data_directory_is_explained(self, tmp_path: Path) -> None:
        """method = "pitr" without pg_data says which key to set."""
        spec_path = tmp_path / "tower.toml"
        spec_path.write_text('[service]\nname = "shop"\n\n[backup]\nmethod = "pitr"\n')
        with pytest.raises(BackupError, match="pg_data"):
            pitr.Pitr.from_spec(load_spec(spec_path, environ={}), tmp_path)

    def test_segment_end(self) -> None:
        """The LSN past a WAL segment, for 16 MiB segments."""
        assert pitr.segment_end("000000010000000000000003") == 4 * 16 * 1024 * 1024
        assert pitr.segment_end("0000000100000001000000FF") == (1 << 32) + 256 * 16 * 1024 * 1024
        assert pitr.parse_lsn("1/3000050") == (1 << 32) + 0x3000050


class TestPointInTimeRecovery:
    def test_archive_under_write_load_and_restore_to_a_second(self, cluster: Cluster) -> None:
        """Under a row every 100 ms, archived WAL stays fresh (the scheduled run takes a
        pgBackRest differential, not a dump), and a restore to T has exactly
        the rows committed before T; `verify --to-time` is recorded as a verified restore of
        the backup set it started from (the full: T is before the diff), so backup.verified
        passes for PITR; a scheduled drill (to the last archived WAL) is recorded against
        the newest set."""
        spec = cluster.spec()
        first = pitr.setup(spec, cluster.folder)
        assert not first.checked and "archive_command" in first.missing
        assert first.missing["archive_mode"] == "on"
        cluster.apply(first.missing)
        ready = pitr.setup(spec, cluster.folder)
        assert ready.checked and ready.missing == {}

        with psycopg.connect(cluster.url, autocommit=True) as connection:
            connection.execute("CREATE TABLE orders (id serial PRIMARY KEY, note text NOT NULL)")
        full = pitr.backup(spec, cluster.folder)
        assert full.kind == "full"

        writer = Writer(cluster.url)
        thread = threading.Thread(target=writer.run, daemon=True)
        thread.start()
        ages = []
        try:
            deadline = time.monotonic() + float(os.environ.get("TOWER_PITR_SECONDS", "40"))
            while time.monotonic() < deadline:
                time.sleep(2)
                status = pitr.archive_status(spec)
                assert not status.failing, status.message
                if status.age is not None:
                    ages.append(status.age)
            with Store.for_spec(spec) as store:
                scheduled = asyncio.run(BackupScheduler(spec, store, config=False).run_once())
            assert scheduled is not None and scheduled.kind == "pitr-diff", scheduled
            diff = pitr.backups(pitr.info(pitr.Pitr.from_spec(spec, cluster.folder)))[-1]
            assert diff.kind == "diff" and diff.label == scheduled.name
            time.sleep(1)
        finally:
            writer.stop.set()
            thread.join(10)
        assert ages and max(ages) <= 60, ages

        middle = len(writer.commits) // 2
        cut, expected = writer.cut(middle)
        when = datetime.fromtimestamp(cut, UTC)
        with psycopg.connect(cluster.url, autocommit=True) as connection:
            connection.execute("SELECT pg_switch_wal()")
        waited = time.monotonic() + 60
        while pitr.archive_status(spec).age not in (0.0,) and time.monotonic() < waited:
            time.sleep(0.5)

        target = cluster.folder / "restored"
        pitr.restore_to_time(spec, cluster.folder, when, target)
        rows = restored_rows(cluster, target, "SELECT id, note FROM orders ORDER BY id")
        assert rows == expected

        check = CheckContext(spec=spec, root=cluster.folder)
        before = asyncio.run(RecentRestore().run(check))
        assert before.status is Status.FAIL and "no backup restore" in before.message
        done = subprocess.run(
            [
                *(sys.executable, "-m", "controltower", "backup", "verify"),
                *("--to-time", when.isoformat(), "--format", "json"),
                *("--spec", str(cluster.folder / "tower.toml")),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        verified = json.loads(done.stdout)
        assert verified["ok"] and verified["tables"]["public.orders"] == len(expected)
        assert verified["to_time"] == when.isoformat() and verified["backup"] == full.label
        after = asyncio.run(RecentRestore().run(check))
        assert after.status is Status.PASS, after.message
        with Store.for_spec(spec) as store:
            rows = {row.name: row for row in records.rows(store, spec, kind="pitr")}
            assert rows[records.pitr_name(spec, full.label)].verify_ok
            drilled = asyncio.run(DrillScheduler(spec, store).run_once())
            assert drilled is not None and drilled.ok, drilled
            newest = records.rows(store, spec, kind="pitr")[0]
            assert newest.name == records.pitr_name(spec, diff.label) and newest.verify_ok
            assert verify_age(spec, store) is not None

    def test_failing_archive_command_is_reported(self, cluster: Cluster) -> None:
        """An archive_command that fails shows as failing, not as a fresh archive."""
        spec = cluster.spec()
        cluster.apply({"archive_mode": "on", "archive_command": "false", "archive_timeout": "1s"})
        with psycopg.connect(cluster.url, autocommit=True) as connection:
            connection.execute("CREATE TABLE t (id int)")
            connection.execute("SELECT pg_switch_wal()")
        end = time.monotonic() + 30
        status = pitr.archive_status(spec)
        while not status.failing and time.monotonic() < end:
            time.sleep(0.5)
            status = pitr.archive_status(spec)
        assert status.failing and not status.ok
        assert "failing" in status.message


def test_restore_into_a_non_empty_directory_is_refused(tmp_path: Path) -> None:
    """A restore never writes over an existing data directory."""
    spec_path = tmp_path / "tower.toml"
    spec_path.write_text(
        '[service]\nname = "shop"\n\n[backup]\nmethod = "pitr"\n\n[backup.pitr]\npg_data = "/x"\n'
    )
    target = tmp_path / "busy"
    target.mkdir()
    (target / "PG_VERSION").write_text("15")
    with pytest.raises(BackupError, match="is not empty"):
        pitr.restore_to_time(
            load_spec(spec_path, environ={}),
            tmp_path,
            datetime.now(UTC) - timedelta(hours=1),
            target,
        )


class TestCommands:
    def test_setup_and_to_time_are_checked_up_front(self, tmp_path: Path) -> None:
        """setup needs method = "pitr"; a bad --to-time and half a PITR restore exit 2."""
        import sys

        spec_path = tmp_path / "tower.toml"
        spec_path.write_text('[service]\nname = "shop"\n\n[backup]\n')

        def tower(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "controltower", "backup", *args, "--spec", str(spec_path)],
                capture_output=True,
                text=True,
                timeout=120,
            )

        done = tower("setup")
        assert done.returncode == 2 and 'method = "pitr"' in done.stderr + done.stdout
        done = tower("verify", "--to-time", "yesterday")
        assert done.returncode == 2 and "is not a time" in done.stderr + done.stdout
        done = tower("restore", "--to-time", "2026-12-01 10:42:00")
        assert done.returncode == 2 and "--pg-data" in done.stderr + done.stdout
