"""Point-in-time recovery with the real pgBackRest on a real PostgreSQL cluster made for the test."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from controltower.backup import pitr
from controltower.exceptions import BackupError
from controltower.spec import Spec, load_spec
from tests.conftest import free_port, unavailable

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.xdist_group("backup-pitr")]


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found or shutil.which("pgbackrest") is None:
        unavailable(
            "PostgreSQL server binaries and pgbackrest are needed", "TOWER_REQUIRE_POSTGRES"
        )
    return found[-1].parent


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@dataclass
class Cluster:
    folder: Path
    data: Path
    port: int
    bin: Path

    @property
    def url(self) -> str:
        return f"postgresql://tower@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), *args),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def spec(self, archive_timeout: str = "5s") -> Spec:
        path = self.folder / "tower.toml"
        path.write_text(
            f"""[service]
name = "shop"

[backup]
database_url = "{self.url}"
method = "pitr"
rpo = "60s"
rto = "5m"

[backup.pitr]
pg_data = "{self.data}"
port = {self.port}
socket = "{self.folder}"
user = "tower"
pg_bin = "{self.bin}"
archive_timeout = "{archive_timeout}"

[backup.destination]
type = "local"
path = "{self.folder / "repo"}"
"""
        )
        return load_spec(path, environ={})


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bin_dir = _pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="tower-pitr-test-"))
    folder.chmod(0o755)
    entry = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    if entry:
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    data = folder / "data"
    subprocess.run(
        _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "tower"),
        check=True,
        capture_output=True,
        timeout=300,
    )
    port = free_port()
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{folder}'\n"
        )
    cluster = Cluster(folder, data, port, bin_dir)
    cluster.ctl("-l", str(folder / "postgres.log"), "-w", "start")
    try:
        yield cluster
    finally:
        cluster.ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def _apply(cluster: Cluster, settings: dict[str, str]) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as connection:
        for name, value in settings.items():
            connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")  # type: ignore[arg-type]
    cluster.ctl("-l", str(cluster.folder / "postgres.log"), "-w", "restart")


@dataclass
class Writer:
    """Inserts one row every ``every`` seconds and remembers when each commit returned."""

    url: str
    every: float = 0.1
    commits: list[tuple[int, str, float, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            number = 0
            while not self.stop.is_set():
                number += 1
                begun = time.time()
                payload = f"row {number} {os.urandom(4).hex()}"
                row = connection.execute(
                    "INSERT INTO orders (note) VALUES (%s) RETURNING id", (payload,)
                ).fetchone()
                assert row is not None
                self.commits.append((int(row[0]), payload, begun, time.time()))
                time.sleep(self.every)


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
        """Under a row every 100 ms, archived WAL stays fresh, and a restore to T has exactly
        the rows committed before T."""
        spec = cluster.spec()
        first = pitr.setup(spec, cluster.folder)
        assert not first.checked and "archive_command" in first.missing
        assert first.missing["archive_mode"] == "on"
        _apply(cluster, first.missing)
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
            diff = pitr.backup(spec, cluster.folder)
            assert diff.kind == "diff"
            time.sleep(1)
        finally:
            writer.stop.set()
            thread.join(10)
        assert ages and max(ages) <= 60, ages

        middle = len(writer.commits) // 2
        cut = writer.commits[middle]
        following = writer.commits[middle + 1]
        when = datetime.fromtimestamp((cut[3] + following[2]) / 2, UTC)
        expected = [(number, payload) for number, payload, _, _ in writer.commits[: middle + 1]]
        with psycopg.connect(cluster.url, autocommit=True) as connection:
            connection.execute("SELECT pg_switch_wal()")
        waited = time.monotonic() + 60
        while pitr.archive_status(spec).age not in (0.0,) and time.monotonic() < waited:
            time.sleep(0.5)

        target = cluster.folder / "restored"
        pitr.restore_to_time(spec, cluster.folder, when, target)
        port = free_port()
        subprocess.run(
            _as_postgres(
                str(cluster.bin / "pg_ctl"),
                "-D",
                str(target),
                "-l",
                str(cluster.folder / "restored.log"),
                "-o",
                f"-p {port} -c archive_mode=off",
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
            timeout=300,
        )
        try:
            url = f"postgresql://tower@127.0.0.1:{port}/postgres"
            rows: list[tuple[int, str]] = []
            end = time.monotonic() + 120
            while time.monotonic() < end:
                try:
                    with psycopg.connect(url, autocommit=True) as connection:
                        recovering = connection.execute("SELECT pg_is_in_recovery()").fetchone()
                        if recovering and recovering[0] is False:
                            rows = [
                                (int(r[0]), str(r[1]))
                                for r in connection.execute(
                                    "SELECT id, note FROM orders ORDER BY id"
                                )
                            ]
                            break
                except psycopg.OperationalError:
                    pass
                time.sleep(0.5)
            assert rows == expected
        finally:
            subprocess.run(
                _as_postgres(
                    str(cluster.bin / "pg_ctl"), "-D", str(target), "-m", "immediate", "stop"
                ),
                capture_output=True,
                timeout=120,
            )

        verified = pitr.verify_to_time(spec, cluster.folder, when)
        assert verified.ok, verified.findings
        assert verified.tables["public.orders"] == len(expected)
        assert verified.when == when

    def test_failing_archive_command_is_reported(self, cluster: Cluster) -> None:
        """An archive_command that fails shows as failing, not as a fresh archive."""
        spec = cluster.spec()
        _apply(
            cluster,
            {"archive_mode": "on", "archive_command": "false", "archive_timeout": "1s"},
        )
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
