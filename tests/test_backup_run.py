from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from controltower.backup import BackupCorrupt, restore_backup, run_backup, verify_backup
from controltower.backup.archive import hash_file
from controltower.backup.pg import Target, Tools, dump_args, restore_args
from controltower.exceptions import BackupError
from controltower.store import Store
from controltower.store.models import AuditEvent, Backup, BackupVerification
from tests.backup_support import (
    EXPECTED,
    counts,
    fill,
    fingerprint,
    fresh_database,
    role_with_password,
    write_spec,
)

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("backup-heavy")]


@pytest.fixture
def source(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url) as url:
        fill(url)
        yield url


class TestBuilders:
    def test_password_stays_out_of_argv(self) -> None:
        """The password goes to PGPASSWORD only; the argument list never holds it."""
        target = Target.from_url("postgresql://app:hunter2@db.internal:6543/shop?sslmode=require")
        tools = Tools("/bin/pg_dump", "/bin/pg_restore", 15)
        args = dump_args(tools, target, compress=6, snapshot="00000003-1")
        assert args == [
            "/bin/pg_dump",
            "--format=custom",
            "--compress=6",
            "--no-password",
            "--dbname=user=app dbname=shop host=db.internal port=6543 sslmode=require",
            "--snapshot=00000003-1",
        ]
        assert "hunter2" not in " ".join(restore_args(tools, target, "/x.dump", jobs=2))
        assert target.env({"PATH": "/bin"}) == {"PATH": "/bin", "PGPASSWORD": "hunter2"}
        assert target.display == "postgresql://app:***@db.internal:6543/shop?sslmode=require"

    def test_restore_args(self) -> None:
        target = Target.from_url("postgresql://u@h/db")
        tools = Tools("pg_dump", "pg_restore", 15)
        assert restore_args(tools, target, "a.dump", jobs=4, clean=True) == [
            "pg_restore",
            "--no-password",
            "--no-owner",
            "--no-privileges",
            "--no-comments",
            "--jobs=4",
            "--dbname=user=u dbname=db host=h",
            "--clean",
            "--if-exists",
            "a.dump",
        ]

    def test_old_pg_dump_refused(self) -> None:
        """A pg_dump older than the server is refused with the version to install."""
        with pytest.raises(BackupError, match="pg_dump 14 cannot dump a PostgreSQL 16 server"):
            Tools("pg_dump", "pg_restore", 14).require(16)


class TestBackupAndRestore:
    def test_backup_restores_with_the_same_rows(
        self, source: str, store: Store, tmp_path: Path
    ) -> None:
        """A real database is dumped, checksummed, restored, and every table has its rows back."""
        spec = write_spec(tmp_path, source)
        result = run_backup(spec, store)
        dump = tmp_path / "backups" / "shop" / f"{result.name}.dump"
        meta = json.loads(dump.with_suffix(".json").read_text())
        assert hash_file(dump) == (meta["sha256"], meta["size"]) == (result.sha256, result.size)
        assert {t: v["rows"] for t, v in meta["tables"].items()} == EXPECTED
        assert meta["server_version"].split(".")[0].isdigit()
        assert meta["source"] == "postgresql://tower:***@127.0.0.1:5432/" + source.rsplit("/", 1)[1]
        assert dump.read_bytes()[:5] == b"PGDMP"
        assert meta["compress"] == 6 and meta["duration"] == result.duration > 0
        assert meta["size"] == dump.stat().st_size and meta["database"] == source.rsplit("/", 1)[1]
        header = subprocess.run(
            [Tools.find().pg_restore, "--list", str(dump)], capture_output=True, text=True
        ).stdout
        assert ";     Format: CUSTOM" in header and ";     Compression: 6" in header
        assert f"Dumped from database version: {meta['server_version']}" in header

        verified = verify_backup(spec, store, result.name)
        assert verified.ok, verified.findings
        assert verified.tables == counts(source) == EXPECTED
        assert any(f.name == "rto" and f.ok for f in verified.findings)

        target = source + "_restored"
        restored = restore_backup(spec, store, "latest", target_url=target, create=True)
        try:
            assert restored.name == result.name
            assert counts(target) == EXPECTED
            assert fingerprint(target) == fingerprint(source)
        finally:
            with psycopg.connect(source.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{target.rsplit("/", 1)[1]}" WITH (FORCE)')  # type: ignore[arg-type]

        with store.session() as session:
            row = session.scalar(select(Backup).where(Backup.name == result.name))
            assert row is not None and row.status == "ok" and row.verify_ok is True
            assert row.sha256 == result.sha256
            assert len(session.scalars(select(BackupVerification)).all()) == 1
            actions = {e.action for e in session.scalars(select(AuditEvent))}
        assert {"backup.database.ok", "backup.verified", "backup.restored"} <= actions

    def test_scratch_database_is_dropped(self, source: str, store: Store, tmp_path: Path) -> None:
        """Verification leaves no scratch database behind."""
        spec = write_spec(tmp_path, source)
        run_backup(spec, store)
        result = verify_backup(spec, store)
        with psycopg.connect(source) as connection:
            row = connection.execute(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (result.scratch,)
            ).fetchone()
        assert row == (0,)

    def test_corrupt_backup_is_caught_before_any_restore(
        self, source: str, store: Store, tmp_path: Path
    ) -> None:
        """One flipped byte fails the checksum; nothing is restored or created."""
        spec = write_spec(tmp_path, source)
        result = run_backup(spec, store)
        dump = tmp_path / "backups" / "shop" / f"{result.name}.dump"
        data = bytearray(dump.read_bytes())
        data[len(data) // 2] ^= 0x01
        dump.write_bytes(bytes(data))
        with pytest.raises(BackupCorrupt, match="is corrupt"):
            verify_backup(spec, store, result.name)
        target = source + "_never"
        with pytest.raises(BackupCorrupt):
            restore_backup(spec, store, result.name, target_url=target, create=True)
        with psycopg.connect(source) as connection:
            row = connection.execute(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (target.rsplit("/", 1)[1],)
            ).fetchone()
        assert row == (0,)
        with store.session() as session:
            assert session.scalars(select(BackupVerification)).all() == []

    def test_tampered_metadata_is_caught(self, source: str, store: Store, tmp_path: Path) -> None:
        """Metadata rewritten to match a changed file still disagrees with the store's record."""
        spec = write_spec(tmp_path, source)
        result = run_backup(spec, store)
        dump = tmp_path / "backups" / "shop" / f"{result.name}.dump"
        dump.write_bytes(dump.read_bytes() + b"junk")
        meta_path = dump.with_suffix(".json")
        meta = json.loads(meta_path.read_text())
        meta["sha256"], meta["size"] = hash_file(dump)
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(BackupCorrupt, match="store recorded"):
            verify_backup(spec, store, result.name)


class TestVerifyFindings:
    def test_failing_check_and_rto(self, source: str, store: Store, tmp_path: Path) -> None:
        """Spec checks run on the restored copy; a restore slower than the RTO fails."""
        extra = """
[[backup.checks]]
name = "paid invoices"
query = "SELECT count(*) AS n FROM billing.invoices WHERE paid"
conditions = ["value == 60", "row.n > 0"]

[[backup.checks]]
name = "impossible"
query = "SELECT count(*) FROM customers"
conditions = ["value > 100000"]
"""
        spec = write_spec(tmp_path, source, extra=extra.replace('rto = "1h"', ""))
        spec.backup.rto = 0.000001
        spec.backup.verify_queries = ["SELECT 1 FROM orders LIMIT 1", "SELECT * FROM nope"]
        run_backup(spec, store)
        result = verify_backup(spec, store)
        found = {f.name: f.ok for f in result.findings}
        assert not result.ok
        assert found["paid invoices"] is True
        assert found["impossible"] is False
        assert found["rto"] is False
        assert found["query 1"] is True and found["query 2"] is False


class TestFailuresAndHeartbeat:
    def test_heartbeat_pinged_on_success(
        self, source: str, store: Store, tmp_path: Path, httpserver: HTTPServer
    ) -> None:
        """A good backup GETs the heartbeat URL."""
        httpserver.expect_request("/ping/backup", method="GET").respond_with_data("ok")
        spec = write_spec(
            tmp_path, source, extra=f'heartbeat = "{httpserver.url_for("/ping/backup")}"'
        )
        result = run_backup(spec, store)
        assert result.heartbeat_error == ""
        assert [r.path for r, _ in httpserver.log] == ["/ping/backup"]

    def test_failed_backup_is_recorded_and_pings_fail(
        self, source: str, store: Store, tmp_path: Path, httpserver: HTTPServer
    ) -> None:
        """A backup that cannot connect is a failed row, and the heartbeat hears /fail."""
        httpserver.expect_request("/ping/backup/fail").respond_with_data("ok")
        missing = source + "_missing"
        spec = write_spec(
            tmp_path, missing, extra=f'heartbeat = "{httpserver.url_for("/ping/backup")}"'
        )
        with pytest.raises(BackupError, match="cannot connect"):
            run_backup(spec, store)
        with store.session() as session:
            rows = session.scalars(select(Backup)).all()
        assert [(r.status, bool(r.error)) for r in rows] == [("failed", True)]
        assert [r.path for r, _ in httpserver.log] == ["/ping/backup/fail"]


class TestSecrets:
    def test_password_never_printed_or_stored(
        self, source: str, postgres_admin_url: str, tmp_path: Path
    ) -> None:
        """The database password is in no output, metadata file or store row."""
        with role_with_password(postgres_admin_url, source) as (url, password):
            write_spec(tmp_path, url)
            spec_file = str(tmp_path / "tower.toml")
            outputs = []
            restored = url.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1] + "_copy"
            for args in (
                ["run"],
                ["list", "--kind", "all"],
                ["verify"],
                ["status", "--format", "json"],
                ["restore", "latest", "--to-env", "RESTORE_URL", "--create"],
                ["prune", "--dry-run", "--format", "json"],
            ):
                done = subprocess.run(
                    [sys.executable, "-m", "controltower", "backup", *args, "--spec", spec_file],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    env={**os.environ, "RESTORE_URL": restored},
                )
                assert done.returncode == 0, done.stderr
                outputs.append(done.stdout + done.stderr)
            assert "restored shop-" in outputs[4] and password not in outputs[4]
            assert counts(restored) == EXPECTED
            assert json.loads(outputs[5])["dry_run"] is True
            bad = write_spec(tmp_path, url.replace(password, password + "x"))
            assert bad.backup.database_url is not None
            done = subprocess.run(
                [sys.executable, "-m", "controltower", "backup", "run", "--spec", spec_file],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 1
            outputs.append(done.stdout + done.stderr)
            assert "password authentication failed" in outputs[-1]
            for output in outputs:
                assert password not in output
            for path in (tmp_path / "backups").rglob("*.json"):
                assert password not in path.read_text()
            store_text = subprocess.run(
                ["sqlite3", str(tmp_path / ".tower" / "tower.db"), ".dump"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if store_text:
                assert password not in store_text
            with (
                Store.open(f"sqlite:///{tmp_path / '.tower' / 'tower.db'}") as store,
                store.session() as session,
            ):
                rows = session.scalars(select(Backup)).all()
                events = session.scalars(select(AuditEvent)).all()
            assert len(rows) >= 3
            for row in rows:
                assert password not in json.dumps(row.detail) + row.error + row.destination
            for event in events:
                assert password not in json.dumps(event.detail)
