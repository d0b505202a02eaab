"""Fixtures shared by the whole suite.

PostgreSQL: tests marked ``postgres`` (and the ``store`` fixture's postgres
variant) use ``$TOWER_TEST_POSTGRES_URL`` (default
``postgresql://tower:tower@127.0.0.1:5432/postgres``) to create a fresh
database per test session. When the server cannot be reached they skip, unless
``TOWER_REQUIRE_POSTGRES=1`` (set by scripts/test.sh and CI), when they fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_APP = ROOT / "examples" / "app"
DEFAULT_PG = "postgresql://tower:tower@127.0.0.1:5432/postgres"


def _require(flag: str) -> bool:
    return os.environ.get(flag, "") not in ("", "0", "false")


def unavailable(reason: str, flag: str) -> None:
    """Skip, or fail when ``flag`` says this part of the suite must run."""
    if _require(flag):
        pytest.fail(f"{reason} (and {flag}=1 requires it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    return os.environ.get("TOWER_TEST_POSTGRES_URL", DEFAULT_PG)


@pytest.fixture(scope="session")
def postgres_server(postgres_admin_url: str) -> Iterator[str]:
    """A URL of a fresh, empty PostgreSQL database for this test session."""
    import psycopg

    try:
        admin = psycopg.connect(postgres_admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable(
            f"PostgreSQL is not reachable at {postgres_admin_url}: {exc}", "TOWER_REQUIRE_POSTGRES"
        )
    name = f"tower_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = postgres_admin_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh database per test (created from the session server)."""
    import psycopg

    base, _ = postgres_server.rsplit("/", 1)
    admin_url = os.environ.get("TOWER_TEST_POSTGRES_URL", DEFAULT_PG)
    name = f"tower_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL for each backend: every store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tower.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[object]:
    from controltower.store import Store

    with Store.open(store_url) as opened:
        yield opened


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed_certificate(
    folder: Path,
    *,
    days: int = 30,
    common_name: str = "127.0.0.1",
    names: str = "IP:127.0.0.1",
) -> tuple[Path, Path]:
    """A self-signed certificate and its key, made by openssl in ``folder``."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
            "-subj", f"/CN={common_name}", "-addext", f"subjectAltName={names}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def wait_for_port(port: int, deadline: float = 15.0) -> None:
    end = time.monotonic() + deadline
    delay = 0.02
    while time.monotonic() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    raise TimeoutError(f"nothing listens on port {port} after {deadline}s")


@pytest.fixture
def example_app(tmp_path: Path) -> Iterator[object]:
    """Start the example app on a free port; ``start(**env)`` returns its base URL."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> str:
        port = free_port()
        environ = {**os.environ, "APP_DATABASE": str(tmp_path / f"app-{port}.db"), **env}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--no-server-header",
                "--log-level",
                "warning",
            ],
            cwd=EXAMPLE_APP,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        wait_for_port(port)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def load_target() -> Iterator[object]:
    """Start the load test target (controltower.load.target); ``start(*args)`` returns its URL."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "controltower.load.target", "--port", str(port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        processes.append(process)
        wait_for_port(port)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


# The Next.js fixture app's pytest fixtures (next_app, next_server), for every test module.
from tests.nextjs_support import next_app, next_server  # noqa: E402

__all__ = ["next_app", "next_server"]
