"""What the server tests share: a store with a day of history in it, and a live server.

``seed`` fills a store through the subsystems' own code: monitor results through
the result writer and an incident through the alerting pass; a readiness run
through the real static checks; releases (a canary that succeeded and one that
was rolled back) as the deploy engine records them; error events through the
ingest writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from controltower.checks import CheckContext, run_checks, select
from controltower.checks.history import save_run
from controltower.clock import utcnow
from controltower.ingest.event import parse_event
from controltower.ingest.projects import ProjectInfo, ensure_project
from controltower.ingest.vitals import Beacon, store_vitals
from controltower.ingest.writer import write_batch
from controltower.monitor.alerting import Alerting
from controltower.monitor.probes import CheckOutcome
from controltower.monitor.registry import sync_monitors
from controltower.monitor.results import ResultWriter
from controltower.spec import Spec, load_spec, parse_spec
from controltower.store import Store, service_id
from controltower.store.models.deploy import Release, ReleaseStep
from tests.conftest import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
CHECKS_FIXTURE = Path(__file__).parent / "fixtures" / "plan_mistakes"
ARTIFACTS = ROOT / "test-artifacts"

SEED_SPEC = """
[service]
name = "shop"

[server]
title = "Shop"
flush_interval = "50ms"

[[server.projects]]
name = "web"
rate_limit = 100000

[[monitors]]
name = "api"
url = "http://127.0.0.1:9/health"
failure_threshold = 1

[[monitors]]
name = "db"
type = "tcp"
url = "tcp://127.0.0.1:9"
"""


@dataclass
class Seeded:
    service_id: int
    monitors: dict[str, int]
    incident_id: int
    good_release: str
    bad_release: str
    readiness_run: str
    issues: dict[str, int]
    project: ProjectInfo


def seed_spec(text: str = SEED_SPEC) -> Spec:
    return parse_spec(text, source="tower.toml", environ={})


def _outcome(name: str, at: datetime, ok: bool, latency: float) -> CheckOutcome:
    level = "ok" if ok else "critical"
    return CheckOutcome(name, at, level, latency, {}, error="" if ok else "connection refused")


def seed_monitoring(store: Store, spec: Spec, now: datetime) -> tuple[int, dict[str, int], int]:
    """A day of checks every 30 minutes (the api slower in the afternoon), then the api
    failing now: the alerting pass opens an incident. Returns service, monitors, incident."""
    from controltower.store.models.monitor import Incident

    service, ids = sync_monitors(store, spec)
    writer = ResultWriter(store)
    for step in range(48, 0, -1):
        at = now - timedelta(minutes=30 * step)
        latency = 0.05 + 0.002 * (48 - step) + (0.04 if step % 7 == 0 else 0.0)
        writer.add(ids["api"], _outcome("api", at, step != 20, latency))
        writer.add(ids["db"], _outcome("db", at, True, 0.004))
    writer.flush()
    writer.add(ids["api"], _outcome("api", now - timedelta(seconds=5), False, 0.001))
    writer.add(ids["db"], _outcome("db", now - timedelta(seconds=5), True, 0.004))
    writer.flush()
    alerting = Alerting(
        store,
        service_id=service,
        service=spec.service.name,
        environment="default",
        monitors=spec.monitors,
        alerts=spec.alerts,
    )
    alerting.run_pass(now)
    with store.session() as session:
        incident = session.query(Incident).filter(Incident.service_id == service).one()
        return service, ids, incident.id


def _release(
    session: Any,
    service: int,
    version: str,
    status: str,
    created: datetime,
    steps: list[tuple[str, str]],
    *,
    reason: str = "",
    previous: str = "",
) -> str:
    release_id = f"r-{uuid.uuid4().hex[:10]}"
    session.add(
        Release(
            id=release_id,
            service_id=service,
            kind="deploy",
            version=version,
            image=f"registry.example/shop:{version}",
            actor="ana",
            strategy="canary",
            driver="local",
            git_commit=uuid.uuid4().hex[:12],
            committed_at=created - timedelta(hours=3),
            previous_id=previous,
            status=status,
            state=steps[-1][0],
            step=len(steps),
            reason=reason,
            created_at=created,
            finished_at=created + timedelta(minutes=4),
        )
    )
    session.flush()
    for index, (state, message) in enumerate(steps):
        session.add(
            ReleaseStep(
                release_id=release_id,
                at=created + timedelta(seconds=30 * index),
                state=state,
                message=message,
            )
        )
    return release_id


def seed_releases(store: Store, now: datetime) -> tuple[str, str]:
    """A canary deploy of v1.4.0 that succeeded and one of v1.5.0 rolled back."""
    with store.session() as session:
        service = service_id(session, "shop", "default")
        good = _release(
            session,
            service,
            "v1.4.0",
            "succeeded",
            now - timedelta(days=2),
            [
                ("starting", "starting v1.4.0 beside v1.3.2"),
                ("canary 10%", "10% of traffic on v1.4.0; error rate 0.0% (baseline 0.1%)"),
                ("canary 50%", "50% of traffic on v1.4.0; p95 182ms (baseline 190ms)"),
                ("succeeded", "v1.4.0 serves all traffic"),
            ],
        )
        bad = _release(
            session,
            service,
            "v1.5.0",
            "rolled_back",
            now - timedelta(hours=5),
            [
                ("starting", "starting v1.5.0 beside v1.4.0"),
                ("canary 10%", "10% of traffic on v1.5.0; error rate 23.5% (baseline 0.1%)"),
                ("rolling_back", "error rate 23.5% > 1%: rolling back"),
                ("rolled_back", "v1.4.0 serves all traffic again"),
            ],
            reason="error rate 23.5% above the 1% budget",
            previous=good,
        )
    return good, bad


def seed_readiness(store: Store) -> str:
    """One real static check run of the plan-mistakes fixture, stored."""
    spec = load_spec(CHECKS_FIXTURE / "tower.toml")
    context = CheckContext(spec=spec, root=CHECKS_FIXTURE)
    run = asyncio.run(run_checks(context, select(kinds=("static",))))
    save_run(store, run)
    return run.id


def crash_event(kind: str, value: str, function: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "level": "error",
        "platform": "python",
        "environment": "production",
        "release": "v1.5.0",
        "exception": {
            "values": [
                {
                    "type": kind,
                    "value": value,
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "app/views.py",
                                "module": "app.views",
                                "function": function,
                                "lineno": 42,
                                "in_app": True,
                                "pre_context": [
                                    "def checkout(request):",
                                    "    cart = load(request)",
                                ],
                                "context_line": "    total = cart.total / cart.count",
                                "post_context": ["    return total"],
                            }
                        ]
                    },
                }
            ]
        },
        **extra,
    }


def seed_errors(store: Store, now: datetime) -> tuple[ProjectInfo, dict[str, int]]:
    """Six ZeroDivisionError events over four hours and one KeyError; issue ids by type."""
    project = ensure_project(store, "web", rate_limit=100000)
    events = [
        parse_event(
            crash_event("ZeroDivisionError", "division by zero", "checkout"),
            project_id=project.id,
            received_at=now - timedelta(hours=hour),
        )
        for hour in (0, 0, 1, 3, 3, 3)
    ]
    events.append(
        parse_event(
            crash_event("KeyError", "'sku'", "add_to_cart"),
            project_id=project.id,
            received_at=now,
        )
    )
    write_batch(store, events)
    # Web vitals of two page loads of /pricing on v1.5.0 (p75 LCP 2124.75 ms, CLS 0.0775).
    store_vitals(
        store,
        project.id,
        [
            Beacon("LCP", 1500.0, "v4-1", page="/pricing", release="v1.5.0"),
            Beacon("LCP", 2333.0, "v4-2", page="/pricing", release="v1.5.0"),
            Beacon("CLS", 0.01, "v4-3", page="/pricing", release="v1.5.0"),
            Beacon("CLS", 0.1, "v4-4", page="/pricing", release="v1.5.0"),
        ],
        now,
    )
    from controltower.store.models.ingest import ErrorIssue

    with store.session() as session:
        rows = session.query(ErrorIssue.title, ErrorIssue.id).all()
    return project, {title.split(":")[0]: issue for title, issue in rows}


def seed(store: Store, spec: Spec | None = None) -> Seeded:
    now = utcnow()
    spec = spec or seed_spec()
    service, monitors, incident = seed_monitoring(store, spec, now)
    good, bad = seed_releases(store, now)
    run = seed_readiness(store)
    project, issues = seed_errors(store, now)
    return Seeded(service, monitors, incident, good, bad, run, issues, project)


@contextlib.contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    """A new, empty store URL of ``kind`` (sqlite or postgres) for a group of tests;
    PostgreSQL unreachable skips, or fails under TOWER_REQUIRE_POSTGRES=1."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'{uuid.uuid4().hex[:8]}.db'}"
        return
    import psycopg

    from tests.conftest import DEFAULT_PG, unavailable

    admin_url = os.environ.get("TOWER_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {admin_url}: {exc}", "TOWER_REQUIRE_POSTGRES")
    name = f"tower_m_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def envelope(*events: dict[str, Any], event_id: str | None = None) -> bytes:
    lines = [json.dumps({"event_id": event_id or uuid.uuid4().hex}).encode()]
    for event in events:
        payload = json.dumps(event).encode()
        lines.append(json.dumps({"type": "event", "length": len(payload)}).encode())
        lines.append(payload)
    return b"\n".join(lines) + b"\n"


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def wait_until(predicate: Any, *, within: float, what: str) -> Any:
    """Poll ``predicate`` with backoff until it returns something truthy."""
    deadline = time.monotonic() + within
    delay = 0.02
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


class ServeProcess:
    """``tower serve`` as its own process, on a free port."""

    def __init__(self, spec_path: Path, database_url: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = spec_path.parent / f"serve-{self.port}.log"
        environ = {**os.environ, "TOWER_DATABASE_URL": database_url, "NO_COLOR": "1"}
        environ.pop("TOWER_ENV", None)
        self._log = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controltower",
                "serve",
                "--spec",
                str(spec_path),
                "--port",
                str(self.port),
                "--database-url",
                database_url,
                "--log-level",
                "warning",
                *extra,
            ],
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port, deadline=30)
        except TimeoutError:
            self.process.kill()
            raise AssertionError(f"tower serve did not start:\n{self.output()}") from None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


def serve_process(spec_path: Path, database_url: str, *extra: str) -> Iterator[ServeProcess]:
    server = ServeProcess(spec_path, database_url, *extra)
    try:
        yield server
    finally:
        server.stop()
