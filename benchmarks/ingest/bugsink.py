"""Bugsink, the peer of ``benchmarks.ingest.run``: installed, configured and run as its docs say.

Bugsink (https://www.bugsink.com, ``pip install bugsink``) is a self-hosted,
Sentry-compatible error tracker on Django. What this module does, and where each
choice comes from:

- Installation: its own virtual environment under the benchmark cache
  (``~/.cache/controltower-bench/bugsink-<version>``, or ``$TOWER_BENCH_CACHE``), so
  its Django pins never touch ours: ``pip install bugsink==<version> gunicorn
  psycopg[binary]`` (docs: "Single Server Production Setup", Python, pip and venv).
- Configuration: ``bugsink-create-conf --template=singleserver`` (the production
  single-server template shipped in the package), then, appended to it:
  the database (SQLite as the template has it, or PostgreSQL through Django's
  ``DATABASES``, which Bugsink supports besides SQLite and MySQL); ``BASE_URL`` on
  loopback over plain HTTP; ``PHONEHOME`` off; and the installation and
  per-project event quotas raised from their defaults (1,000 events per 5 minutes,
  5,000 per hour: ``bugsink/app_settings.py``) so that they never refuse a
  benchmark's events, as tower's project ``rate_limit`` is raised in its spec.
  The project's ``retention_max_event_count`` (default 10,000) is raised too, so
  no stored event is evicted during the run. Everything else is the template's:
  snappea with ``TASK_ALWAYS_EAGER = False`` and ``NUM_WORKERS = 4``.
- Database: ``bugsink-manage migrate`` and ``bugsink-manage migrate snappea
  --database=snappea`` (the steps of the Docker image's start command).
- Processes: gunicorn ``--workers=2 --timeout=6 --max-requests=1000
  --max-requests-jitter=100 --access-logfile <file> bugsink.wsgi`` (the
  single-server guide's systemd unit; 2 workers is also what the Docker image's
  ``gunicorn.docker.conf.py`` picks on 2 cores) and ``bugsink-runsnappea`` (the
  background worker that digests what the endpoint stored on disk into the
  database). No nginx in front: tower is measured without a proxy too.

Accepted events are the envelope POSTs gunicorn's access log shows answered 200;
stored events are rows of ``events_event`` for the run's project.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

VERSION = "2.6.2"
QUOTA = 10**9


def cache_dir() -> Path:
    """Where the benchmarks keep what they install (not the repository)."""
    base = os.environ.get("TOWER_BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "controltower-bench"
    )
    return Path(base)


def ensure_installed() -> Path:
    """Bugsink's virtual environment (created and installed on first use); its bin folder."""
    venv = cache_dir() / f"bugsink-{VERSION}"
    binary = venv / "bin"
    if (binary / "bugsink-manage").exists() and (binary / "gunicorn").exists():
        return binary
    print(f"installing Bugsink {VERSION} into {venv} (once)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(binary / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"bugsink=={VERSION}",
            "gunicorn",
            "psycopg[binary]",
        ],
        check=True,
    )
    return binary


def _pg_settings(url: str) -> str:
    match = re.fullmatch(r"postgresql://([^:@/]+)(?::([^@/]*))?@([^:/]+)(?::(\d+))?/(.+)", url)
    if not match:
        raise SystemExit(f"cannot read the PostgreSQL URL for Bugsink: {url.split('@')[-1]}")
    user, password, host, port, name = match.groups()
    return (
        'DATABASES["default"] = {"ENGINE": "django.db.backends.postgresql", '
        f"'NAME': {name!r}, 'USER': {user!r}, 'PASSWORD': {password or ''!r}, "
        f"'HOST': {host!r}, 'PORT': {port or '5432'!r}}}\n"
    )


@dataclass
class Installation:
    """One configured, migrated Bugsink: its folder, environment and database URL."""

    bin: Path
    base: Path
    url: str
    port: int

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(self.base),
            "DJANGO_SETTINGS_MODULE": "bugsink_conf",
            "PYTHONUNBUFFERED": "1",
        }

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [str(self.bin / "bugsink-manage"), *args],
            env=self.env,
            cwd=self.base,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"bugsink-manage {args[0]} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def create_project(self, name: str) -> tuple[int, str]:
        """A project (in a team) that keeps every event and sends no alerts: (id, DSN key)."""
        out = self.manage(
            "shell",
            "-c",
            "from teams.models import Team\n"
            "from projects.models import Project\n"
            "team, _ = Team.objects.get_or_create(name='bench')\n"
            f"p = Project.objects.create(team=team, name={name!r}, slug={name!r}, "
            "retention_max_event_count=2_000_000_000, alert_on_new_issue=False, "
            "alert_on_regression=False, alert_on_unmute=False)\n"
            "print('PROJECT', p.id, p.sentry_key.hex)\n",
        )
        found = re.search(r"PROJECT (\d+) ([0-9a-f]{32})", out)
        if not found:
            raise SystemExit(f"Bugsink did not create the project: {out[-500:]}")
        return int(found.group(1)), found.group(2)


def install(workdir: Path, db_url: str, port: int) -> Installation:
    """Configure Bugsink for ``db_url`` (``sqlite:///…`` or PostgreSQL) and migrate it."""
    binary = ensure_installed()
    base = workdir / f"bugsink-{secrets.token_hex(4)}"
    base.mkdir()
    subprocess.run(
        [
            str(binary / "bugsink-create-conf"),
            "--template=singleserver",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--base-dir={base}",
            f"--output-file={base / 'bugsink_conf.py'}",
        ],
        check=True,
        capture_output=True,
    )
    overrides = "\n# benchmarks/ingest/bugsink.py: loopback, no proxy, quotas out of the way\n"
    if db_url.startswith("postgresql"):
        overrides += _pg_settings(db_url)
    else:
        overrides += f"DATABASES['default']['NAME'] = {db_url.removeprefix('sqlite:///')!r}\n"
    overrides += (
        f"BUGSINK['BASE_URL'] = 'http://127.0.0.1:{port}'\n"
        "BUGSINK['PHONEHOME'] = False\n"
        + "".join(
            f"BUGSINK[{key!r}] = {QUOTA}\n"
            for key in (
                "MAX_EVENTS_PER_PROJECT_PER_5_MINUTES",
                "MAX_EVENTS_PER_PROJECT_PER_HOUR",
                "MAX_EVENTS_PER_PROJECT_PER_MONTH",
                "MAX_EVENTS_PER_5_MINUTES",
                "MAX_EVENTS_PER_HOUR",
                "MAX_EVENTS_PER_MONTH",
            )
        )
        + "SESSION_COOKIE_SECURE = False\nCSRF_COOKIE_SECURE = False\n"
        "ALLOWED_HOSTS = ['127.0.0.1', 'localhost']\n"
    )
    with (base / "bugsink_conf.py").open("a") as conf:
        conf.write(overrides)
    installation = Installation(binary, base, db_url, port)
    installation.manage("migrate", "-v0")
    installation.manage("migrate", "snappea", "--database=snappea", "-v0")
    return installation


@contextlib.contextmanager
def running(installation: Installation) -> Iterator[tuple[subprocess.Popen[bytes], ...]]:
    """gunicorn and snappea, started as the single-server guide starts them; stopped after."""
    log = (installation.base / "server.log").open("wb")
    gunicorn = subprocess.Popen(
        [
            str(installation.bin / "gunicorn"),
            f"--bind=127.0.0.1:{installation.port}",
            "--workers=2",
            "--timeout=6",
            "--max-requests=1000",
            "--max-requests-jitter=100",
            f"--access-logfile={installation.base / 'access.log'}",
            "bugsink.wsgi",
        ],
        env=installation.env,
        cwd=installation.base,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    snappea = subprocess.Popen(
        [str(installation.bin / "bugsink-runsnappea")],
        env=installation.env,
        cwd=installation.base,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield gunicorn, snappea
    finally:
        for process in (gunicorn, snappea):
            process.terminate()
        for process in (gunicorn, snappea):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def wait_ready(installation: Installation, gunicorn: subprocess.Popen[bytes]) -> None:
    """Until both gunicorn workers have booted: ``/health/ready`` answers 200 a few times."""
    import httpx

    deadline = time.monotonic() + 300
    ok = 0
    while time.monotonic() < deadline and ok < 4:
        if gunicorn.poll() is not None:
            raise SystemExit(f"Bugsink's gunicorn exited with {gunicorn.returncode}")
        try:
            answer = httpx.get(f"http://127.0.0.1:{installation.port}/health/ready", timeout=30)
            ok = ok + 1 if answer.status_code == 200 else 0
        except httpx.HTTPError:
            ok = 0
        time.sleep(0.2)
    if ok < 4:
        raise SystemExit("Bugsink did not become ready in 300 s")


def accepted(installation: Installation, project_id: int) -> int:
    """Envelope POSTs to the project that gunicorn's access log shows answered 200."""
    path = installation.base / "access.log"
    if not path.exists():
        return 0
    needle = f'"POST /api/{project_id}/envelope/ '
    return sum(
        1
        for line in path.read_text(errors="replace").splitlines()
        if needle in line and '" 200 ' in line
    )


def digest_times(installation: Installation) -> list[float]:
    """Seconds each digest task took, from snappea's log of this run."""
    path = installation.base / "server.log"
    if not path.exists():
        return []
    pattern = re.compile(r'Worker done for "ingest\.tasks\.digest" in ([\d.]+)s')
    return [float(m.group(1)) for m in pattern.finditer(path.read_text(errors="replace"))]


def backlog(installation: Installation) -> int:
    """Digest tasks snappea has not run yet (its queue is a SQLite table)."""
    import sqlite3

    path = installation.base / "snappea.sqlite3"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        return int(conn.execute("SELECT count(*) FROM snappea_task").fetchone()[0])


if __name__ == "__main__":
    print(ensure_installed().parent)
