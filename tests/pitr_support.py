"""A private PostgreSQL cluster for point-in-time recovery, a steady writer, and a restored
copy read back row by row: shared by tests/test_backup_pitr.py and benchmarks/backup."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from controltower.spec import Spec, load_spec
from tests.conftest import free_port


def pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries, when they and pgbackrest are installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found or shutil.which("pgbackrest") is None:
        return None
    return found[-1].parent


def as_postgres(*args: str) -> list[str]:
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
            as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), *args),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def spec(self, archive_timeout: str = "5s", rpo: str = "60s") -> Spec:
        path = self.folder / "tower.toml"
        path.write_text(
            f"""[service]
name = "shop"

[backup]
database_url = "{self.url}"
method = "pitr"
rpo = "{rpo}"
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

    def apply(self, settings: dict[str, str]) -> None:
        """ALTER SYSTEM each setting, then restart the cluster."""
        with psycopg.connect(self.url, autocommit=True) as connection:
            for name, value in settings.items():
                connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")  # type: ignore[arg-type]
        self.ctl("-l", str(self.folder / "postgres.log"), "-w", "restart")


@contextmanager
def private_cluster(bin_dir: Path) -> Iterator[Cluster]:
    """initdb a cluster in a temporary folder, start it on a free port, remove it after."""
    folder = Path(tempfile.mkdtemp(prefix="tower-pitr-test-"))
    folder.chmod(0o755)
    entry = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    if entry:
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    data = folder / "data"
    subprocess.run(
        as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "tower"),
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

    def cut(self, index: int) -> tuple[float, list[tuple[int, str]]]:
        """A time between commit ``index`` and the next, and the rows committed before it."""
        done, following = self.commits[index], self.commits[index + 1]
        expected = [(number, payload) for number, payload, _, _ in self.commits[: index + 1]]
        return (done[3] + following[2]) / 2, expected


def restored_rows(cluster: Cluster, target: Path, query: str) -> list[tuple[int, str]]:
    """Start the restored data directory on a free port, wait for promotion, read ``query``."""
    port = free_port()
    subprocess.run(
        as_postgres(
            str(cluster.bin / "pg_ctl"),
            "-D",
            str(target),
            "-l",
            str(target.parent / f"{target.name}.log"),
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
        end = time.monotonic() + 300
        while time.monotonic() < end:
            try:
                with psycopg.connect(url, autocommit=True) as connection:
                    recovering = connection.execute("SELECT pg_is_in_recovery()").fetchone()
                    if recovering and recovering[0] is False:
                        return [
                            (int(r[0]), str(r[1]))
                            for r in connection.execute(query)  # type: ignore[arg-type]
                        ]
            except psycopg.OperationalError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the restored copy in {target} was not promoted within 300s")
    finally:
        subprocess.run(
            as_postgres(str(cluster.bin / "pg_ctl"), "-D", str(target), "-m", "immediate", "stop"),
            capture_output=True,
            timeout=120,
        )
