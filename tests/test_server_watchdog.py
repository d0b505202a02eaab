"""The dead man's switch of ``tower serve``: ``[server] heartbeat_url``, and the check
that warns when there is none."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from controltower.checks import CheckContext, run_checks, select
from controltower.server.watchdog import Watchdog
from controltower.spec import parse_spec
from tests.conftest import free_port


class Healthchecks:
    """Healthchecks.io's ping endpoint (https://healthchecks.io/docs/http_api/): GET on
    ``/<uuid>`` answers 200 "OK"; an unknown uuid answers 404 "not found"."""

    def __init__(self, known: str = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278") -> None:
        self.known = known
        self.pings: list[float] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = self.path.strip("/") == service.known
                if ok:
                    service.pings.append(time.monotonic())
                body = b"OK" if ok else b"not found"
                self.send_response(200 if ok else 404)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, uuid: str | None = None) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{uuid or self.known}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def healthchecks() -> Iterator[Healthchecks]:
    service = Healthchecks()
    yield service
    service.close()


async def run_for(watchdog: Watchdog, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(watchdog.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 5)


class TestWatchdog:
    def test_pings_at_start_and_every_interval(self, healthchecks: Healthchecks) -> None:
        """A ping at once, then one per interval, and none after stop."""
        watchdog = Watchdog(healthchecks.url(), interval=0.3)
        asyncio.run(run_for(watchdog, 1.5))
        assert 3 <= len(healthchecks.pings) <= 6, healthchecks.pings
        gaps = [b - a for a, b in itertools.pairwise(healthchecks.pings)]
        assert all(gap > 0.2 for gap in gaps), gaps
        count = len(healthchecks.pings)
        time.sleep(0.5)
        assert len(healthchecks.pings) == count

    def test_refused_and_unreachable_pings_go_on(
        self, healthchecks: Healthchecks, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A 404 (unknown check) or a refused connection is counted and logged without the
        URL's path, and the next ping is still sent."""
        wrong = Watchdog(healthchecks.url("secret-uuid-0000"), interval=0.2)
        asyncio.run(run_for(wrong, 1.0))
        assert wrong.failed >= 2 and wrong.sent == 0
        gone = Watchdog(f"http://127.0.0.1:{free_port()}/secret-uuid-1111", interval=0.2)
        asyncio.run(run_for(gone, 1.0))
        assert gone.failed >= 2
        out = capsys.readouterr()
        assert "watchdog.ping_refused" in out.out + out.err
        assert "secret-uuid" not in out.out + out.err

    def test_serve_runs_it_from_the_spec(self, healthchecks: Healthchecks, tmp_path: Path) -> None:
        """``tower serve`` starts the watchdog when [server] heartbeat_url is set."""
        from controltower.server.app import build_services
        from controltower.server.factory import prepare
        from controltower.store import Store

        spec = parse_spec(
            f'[service]\nname = "shop"\n[server]\nheartbeat_url = "{healthchecks.url()}"\n',
            environ={},
        )
        with Store.open(f"sqlite:///{tmp_path / 'tower.db'}") as store:
            context, _ = prepare(spec, store, monitors=False, notify=False)
            names = [service.name for service in build_services(context)]
        assert "watchdog" in names


class TestWatchdogCheck:
    def _finding(self, text: str, tmp_path: Path) -> object:
        spec = parse_spec(text, source=str(tmp_path / "tower.toml"), environ={})

        async def check() -> object:
            async with httpx.AsyncClient() as client:
                ctx = CheckContext(
                    spec=spec,
                    root=tmp_path,
                    url="http://127.0.0.1:9",
                    client=client,
                    environment=None,
                    environ={},
                )
                return (await run_checks(ctx, select(ids=("server.watchdog",)))).findings[0]

        return asyncio.run(check())

    def test_warns_without_a_heartbeat_url(self, tmp_path: Path) -> None:
        """`tower check` warns when nothing outside would notice tower serve dying."""
        finding = self._finding('[service]\nname = "shop"\n', tmp_path)
        assert finding.status.value == "warn"
        assert "heartbeat_url" in finding.message

    def test_passes_with_one(self, tmp_path: Path) -> None:
        """With [server] heartbeat_url set, the check passes."""
        text = '[service]\nname = "shop"\n[server]\nheartbeat_url = "https://hc-ping.com/x"\n'
        assert self._finding(text, tmp_path).status.value == "pass"
