"""``tower serve`` as a real process on a real port, fed by the real ``sentry-sdk``.

An application using sentry-sdk reports exceptions and messages to the DSN of a
running ``tower serve``; the API then shows them grouped into issues, with the
fields, stack frames and scrubbed context. Also: a graceful stop writes what is
buffered, several workers share one PostgreSQL store, and the server runs the
monitors and delivers incident and error alerts by email (Resend).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controltower.server import create_token
from controltower.store import Store
from tests.fakes.resend import FakeResend
from tests.serve_support import ServeProcess, crash_event, envelope, wait_until

SDK_APP = Path(__file__).parent / "apps" / "sentry_app.py"

SPEC = """
[service]
name = "shop"

[server]
flush_interval = "{flush}"
batch_size = {batch}

[[server.projects]]
name = "web"
rate_limit = 100000
"""


class Live:
    """A running ``tower serve`` and a read token for its API."""

    def __init__(self, server: ServeProcess, token: str) -> None:
        self.server = server
        self.client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def dsn(self, project: str = "web") -> str:
        projects = self.client.get("/api/v1/projects").json()["items"]
        return next(p["dsn"] for p in projects if p["name"] == project)

    def issues(self) -> dict[str, dict[str, Any]]:
        items = self.client.get("/api/v1/issues?limit=100").json()["items"]
        return {item["title"]: item for item in items}

    def stored(self) -> int:
        return sum(issue["count"] for issue in self.issues().values())

    def report_errors(self, compression: str = "default") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SDK_APP), self.dsn(), compression],
            capture_output=True,
            text=True,
            timeout=60,
        )


def start(
    tmp_path: Path,
    store_url: str,
    *args: str,
    flush: str = "50ms",
    batch: int = 500,
    extra: str = "",
) -> Live:
    spec = tmp_path / "tower.toml"
    spec.write_text(SPEC.format(flush=flush, batch=batch) + extra)
    server = ServeProcess(spec, store_url, *args)
    try:
        with Store.open(store_url) as store:
            token, _ = create_token(store, "test", ["read"])
    except BaseException:
        server.stop()
        raise
    return Live(server, token)


@pytest.fixture
def live(tmp_path: Path, store_url: str) -> Iterator[Live]:
    running = start(tmp_path, store_url)
    yield running
    running.server.stop()


class TestSentrySdk:
    def test_exceptions_are_grouped_through_the_api(self, live: Live) -> None:
        """sentry-sdk's exceptions, messages and a crash arrive as issues grouped by stack
        (three ZeroDivisionErrors are one issue), by message template (two orders, one
        issue), with release, environment, code, frames, and secrets scrubbed."""
        result = live.report_errors()
        assert result.returncode == 1 and "the worker crashed" in result.stderr
        issues = wait_until(
            lambda: (
                (found := live.issues()) and sum(i["count"] for i in found.values()) >= 7 and found
            ),
            within=20,
            what="seven events stored",
        )
        counts = {title: issue["count"] for title, issue in issues.items()}
        assert counts == {
            "ZeroDivisionError: float division by zero": 3,
            "KeyError: 'sku-1'": 1,
            "payment declined for order 1234": 2,
            "RuntimeError: the worker crashed": 1,
        }
        assert {issue["status"] for issue in issues.values()} == {"unresolved"}
        assert issues["RuntimeError: the worker crashed"]["level"] == "error"

        zero = issues["ZeroDivisionError: float division by zero"]
        events = live.client.get(f"/api/v1/issues/{zero['id']}/events").json()["items"]
        assert len(events) == 3
        event = events[0]
        assert (event["release"], event["environment"], event["platform"]) == (
            "shop@1.5.0",
            "production",
            "python",
        )
        assert event["code"] == "ZeroDivisionError"
        frames = event["exception"][-1]["frames"]
        assert frames[-1]["function"] == "checkout"
        assert "cart_total / count" in frames[-1]["context_line"]
        assert frames[-1]["vars"]["password"] == "[Filtered]"

        declined = issues["payment declined for order 1234"]
        [message, *_] = live.client.get(f"/api/v1/issues/{declined['id']}/events").json()["items"]
        assert message["code"] == "PAYMENT_DECLINED"
        assert message["message"] in (
            "payment declined for order 1234",
            "payment declined for order 5678",
        )
        stored = json.dumps(live.client.get("/api/v1/issues?limit=100").json()) + json.dumps(
            [live.client.get(f"/api/v1/issues/{i['id']}/events").json() for i in issues.values()]
        )
        for secret in ("hunter2-very-secret", "4242 4242 4242 4242", "sk_live_abcdefghijklmnop"):
            where = stored.find(secret)
            assert where < 0, stored[max(0, where - 300) : where + 50]
        hours = live.client.get(f"/api/v1/issues/{zero['id']}/hours").json()["items"]
        assert sum(hour["count"] for hour in hours) == 3

    @pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
    def test_gzip_and_uncompressed_envelopes(self, live: Live) -> None:
        """The SDK's gzip and uncompressed transports work as well as its default (brotli)."""
        for compression in ("gzip", "none"):
            result = live.report_errors(compression)
            assert "the worker crashed" in result.stderr, result.stderr
        wait_until(lambda: live.stored() >= 14, within=20, what="fourteen events stored")
        assert live.issues()["ZeroDivisionError: float division by zero"]["count"] == 6


class TestShutdown:
    def test_sigterm_writes_buffered_events(self, tmp_path: Path, store_url: str) -> None:
        """Events accepted but not yet written when SIGTERM arrives are written before exit 0."""
        live = start(tmp_path, store_url, flush="30s", batch=100000)
        try:
            project = live.client.get("/api/v1/projects").json()["items"][0]
            key = project["dsn"].split("//")[1].split("@")[0]
            with httpx.Client(base_url=live.server.url) as client:
                for n in range(200):
                    event = crash_event("ValueError", f"bad input {n}", "parse")
                    response = client.post(
                        f"/api/{project['id']}/envelope/?sentry_key={key}",
                        content=envelope(event),
                    )
                    assert response.status_code == 200
            assert live.stored() == 0, "the long flush interval keeps events in the buffer"
        finally:
            code = live.server.stop()
        output = live.server.output()
        assert code == 0, output
        assert "200 error events received, 200 stored" in output
        with Store.open(store_url) as store:
            from sqlalchemy import func, select

            from controltower.store.models.ingest import ErrorEvent

            with store.session() as session:
                assert session.scalar(select(func.count()).select_from(ErrorEvent)) == 200


@pytest.mark.postgres
@pytest.mark.slow
class TestWorkers:
    def test_two_workers_share_postgres(self, tmp_path: Path, postgres_url: str) -> None:
        """--workers 2 on PostgreSQL: every event sent to either worker is stored once;
        --no-monitors leaves the spec's monitors to `tower monitor`."""
        monitor = '[[monitors]]\nname = "api"\nurl = "http://127.0.0.1:9/"\ninterval = "1h"\n'
        live = start(tmp_path, postgres_url, "--workers", "2", "--no-monitors", extra=monitor)
        try:
            project = live.client.get("/api/v1/projects").json()["items"][0]
            key = project["dsn"].split("//")[1].split("@")[0]
            ids = [uuid.uuid4().hex for _ in range(60)]
            for event_id in ids:
                with httpx.Client(base_url=live.server.url) as client:  # a new connection each
                    event = crash_event("ValueError", "bad input", "parse", event_id=event_id)
                    assert (
                        client.post(
                            f"/api/{project['id']}/envelope/?sentry_key={key}",
                            content=envelope(event),
                        ).status_code
                        == 200
                    )
            wait_until(lambda: live.stored() == 60, within=20, what="sixty events stored")
            services = httpx.get(f"{live.server.url}/readyz").json()["services"]
            assert "ingest-writer" in services and "monitors" not in services
        finally:
            assert live.server.stop() == 0, live.server.output()


class TestWorkerOptions:
    def test_sqlite_refuses_several_workers(self, tmp_path: Path) -> None:
        """Several workers on SQLite is a usage error (exit 2), not a slow surprise."""
        spec = tmp_path / "tower.toml"
        spec.write_text(SPEC.format(flush="50ms", batch=500))
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "controltower",
                "serve",
                "--spec",
                str(spec),
                "--workers",
                "2",
                "--database-url",
                f"sqlite:///{tmp_path / 'tower.db'}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert "PostgreSQL" in result.stdout + result.stderr


ALERTS_SPEC = """
[service]
name = "shop"

[server]
flush_interval = "50ms"

[server.error_alerts]
min_level = "error"

[[server.projects]]
name = "web"

[alerts]
default_channels = ["email"]

[alerts.channels.email]
type = "resend"
api_key = "re_test_123456789"
api_url = "{resend}"
from = "tower <tower@shop.example>"
to = ["oncall@shop.example"]

[[monitors]]
name = "api"
url = "http://127.0.0.1:{closed}/health"
interval = "1s"
timeout = "1s"
failure_threshold = 1
"""


class TestServeRunsEverything:
    @pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
    def test_monitors_and_error_alerts_reach_email(self, tmp_path: Path, store_url: str) -> None:
        """One `tower serve` checks the monitor, opens an incident, and emails it through
        Resend; a new error issue from the SDK is emailed too (the default error channel)."""
        from tests.conftest import free_port

        resend = FakeResend().start()
        try:
            spec = tmp_path / "tower.toml"
            spec.write_text(ALERTS_SPEC.format(resend=resend.url, closed=free_port()))
            server = ServeProcess(spec, store_url)
            try:
                with Store.open(store_url) as store:
                    token, _ = create_token(store, "test", ["read"])
                live = Live(server, token)
                incident = wait_until(
                    lambda: live.client.get("/api/v1/incidents?status=open").json()["items"],
                    within=30,
                    what="an incident opened by the monitor",
                )[0]
                assert incident["monitors"] == ["api"]
                assert live.report_errors().returncode == 1
                emails = wait_until(
                    lambda: len(resend.emails) >= 5 and resend.emails,
                    within=30,
                    what="an email per incident and per new error issue",
                )
                subjects = [email["subject"] for email in emails]
                assert any("api is failing" in s for s in subjects), subjects
                assert any("New error in web: ZeroDivisionError" in s for s in subjects), subjects
                assert all(email["to"] == ["oncall@shop.example"] for email in emails)
                health = httpx.get(f"{server.url}/readyz").json()
                assert {"ingest-writer", "monitors", "notify"} <= set(health["services"])
            finally:
                assert server.stop() == 0, server.output()
        finally:
            resend.stop()


class TestStartServer:
    """The server embedded in another program, as `tower demo` runs it."""

    def test_start_dsn_user_and_stop(self, tmp_path: Path) -> None:
        """start_server on a free port answers; .dsn() makes a project that takes events at
        once; .add_user() lets a person log in; stop() writes what is buffered."""
        import re

        from controltower.server import start_server
        from controltower.spec import parse_spec

        spec = parse_spec(SPEC.format(flush="30s", batch=100000), environ={})
        with Store.open(f"sqlite:///{tmp_path / 'tower.db'}") as store:
            server = start_server(spec, store, port=0)
            try:
                assert httpx.get(f"{server.url}/healthz").json()["status"] == "pass"
                dsn = server.dsn("demo")
                assert dsn.startswith("http://") and dsn.endswith("/2")
                key, project = dsn.split("//")[1].split("@")[0], dsn.rsplit("/", 1)[1]
                for n in range(5):
                    event = crash_event("ValueError", f"bad {n}", "parse")
                    sent = httpx.post(
                        f"{server.url}/api/{project}/envelope/?sentry_key={key}",
                        content=envelope(event),
                    )
                    assert sent.status_code == 200
                server.add_user("demo", "a long demo password")
                with httpx.Client(base_url=server.url) as browser:
                    form = browser.get("/login").text
                    found = re.search(r'name="csrf" value="([^"]+)"', form)
                    assert found is not None
                    token = found.group(1)
                    login = browser.post(
                        "/login",
                        data={"csrf": token, "name": "demo", "password": "a long demo password"},
                    )
                    assert login.status_code == 303 and "tower_session" in browser.cookies
            finally:
                server.stop()
            assert not server.running
            from sqlalchemy import func, select

            from controltower.store.models.ingest import ErrorEvent

            with store.session() as session:
                assert session.scalar(select(func.count()).select_from(ErrorEvent)) == 5

    def test_port_in_use_is_a_usage_error(self, tmp_path: Path) -> None:
        """A port another process holds is refused with a hint, not a thread traceback."""
        import socket

        from controltower.exceptions import UsageError
        from controltower.server import start_server

        with socket.socket() as taken, Store.open(f"sqlite:///{tmp_path / 't.db'}") as store:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            with pytest.raises(UsageError, match="cannot listen"):
                start_server(None, store, port=taken.getsockname()[1])
