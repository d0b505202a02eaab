"""Probes against real local targets: HTTP, keyword, TCP, TLS, heartbeat, Prometheus, machines."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from controltower.clock import utcnow
from controltower.exceptions import MonitorError
from controltower.monitor import ProbeEnv, check, record_ping
from controltower.monitor.heartbeat import last_ping
from controltower.monitor.registry import sync_monitors
from controltower.promexpr import CounterMemory, Expression, parse_samples
from controltower.spec import Spec
from controltower.spec.monitors import MonitorSpec
from controltower.store import Store
from controltower.testing import FakeClock
from tests.conftest import free_port, self_signed_certificate
from tests.monitor_support import Target, spec_from


def monitor(**values: object) -> MonitorSpec:
    return MonitorSpec.model_validate({"name": "m", **values})


async def run(spec: MonitorSpec, env: ProbeEnv | None = None):  # type: ignore[no-untyped-def]
    env = env or ProbeEnv()
    try:
        return await check(spec, env)
    finally:
        await env.aclose()


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    yield server
    server.down()


class TestHttp:
    async def test_conditions_on_status_body_headers_latency(self, target: Target) -> None:
        """Conditions see the status, JSON body paths, headers and latency."""
        target.body = {"status": "pass", "checks": {"db": [{"status": "pass"}]}}
        outcome = await run(
            monitor(
                url=target.url,
                conditions=[
                    "status == 200",
                    'body.status == "pass"',
                    'body.checks.db[0].status == "pass"',
                    'header.content-type =~ "json"',
                    "latency < 5s",
                ],
            )
        )
        assert outcome.ok, outcome.message
        assert [r.ok for r in outcome.results] == [True] * 5

    async def test_failing_condition_is_critical_with_message(self, target: Target) -> None:
        """A failing condition makes the check critical and says what was observed."""
        target.status = 503
        outcome = await run(monitor(url=target.url, conditions=["status == 200"]))
        assert outcome.level == "critical"
        assert "observed 503" in outcome.message

    async def test_warning_conditions(self, target: Target) -> None:
        """A failing warning condition alone makes the check a warning."""
        target.delay = 0.05
        outcome = await run(monitor(url=target.url, warning=["latency < 1ms"]))
        assert outcome.level == "warning"

    async def test_method_headers_body_are_sent(self) -> None:
        """The method, headers and body of the monitor reach the target."""
        seen: dict[str, str] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("content-length", 0))
                seen.update(
                    method="PUT",
                    token=self.headers.get("x-token", ""),
                    body=self.rfile.read(length).decode(),
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            outcome = await run(
                monitor(
                    url=url,
                    method="PUT",
                    headers={"x-token": "t1"},
                    body='{"a":1}',
                    conditions=["status == 204"],
                )
            )
        finally:
            server.shutdown()
            server.server_close()
        assert outcome.ok
        assert seen == {"method": "PUT", "token": "t1", "body": '{"a":1}'}

    async def test_refused_and_timeout_are_errors(self, target: Target) -> None:
        """Nothing listening, or too slow an answer, is a critical check with the reason."""
        refused = await run(monitor(url=f"http://127.0.0.1:{free_port()}/"))
        assert refused.level == "critical" and "cannot connect" in refused.message
        target.delay = 0.5
        slow = await run(monitor(url=target.url, timeout="100ms"))
        assert slow.level == "critical" and "timed out" in slow.message

    async def test_keyword(self, target: Target) -> None:
        """A keyword monitor passes when the page contains the keyword, and fails when not."""
        target.content_type = "text/html"
        target.body = "<h1>Welcome to the shop</h1>"
        found = await run(monitor(type="keyword", url=target.url, keyword="Welcome"))
        missing = await run(monitor(type="keyword", url=target.url, keyword="Checkout"))
        assert found.ok and not missing.ok


class KeepAliveServer:
    """An HTTP/1.1 server that remembers which client port sent each request."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.ports.append(self.client_address[1])
                if self.path == "/old":
                    self.send_response(302)
                    self.send_header("location", "/new")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"path": self.path}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TestPlainHttp:
    async def test_keep_alive_connections_are_reused(self) -> None:
        """Checks of one host share a kept-alive connection instead of opening one each."""
        server = KeepAliveServer()
        env = ProbeEnv()
        try:
            for _ in range(5):
                outcome = await check(monitor(url=f"{server.url}/health"), env)
                assert outcome.ok and outcome.context["body"] == {"path": "/health"}
        finally:
            await env.aclose()
            server.close()
        assert len(server.ports) == 5 and len(set(server.ports)) == 1

    @pytest.mark.parametrize(
        "answer",
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding:chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding:  Chunked\r\n\r\n3;x=1\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length:5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello",
        ],
        ids=["chunked-no-space", "chunked-extension", "length-no-space", "until-close"],
    )
    async def test_framing_as_servers_send_it(self, answer: bytes) -> None:
        """Valid framing without a space after the colon, with chunk extensions or a body
        until close is read by the parser, not waited on until the timeout."""

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            if b"Content-Type" in answer:
                writer.close()
            else:
                await reader.read()  # keep the connection until the client is done

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            outcome = await run(
                monitor(
                    type="keyword", url=f"http://127.0.0.1:{port}/", timeout="5s", keyword="hello"
                )
            )
        finally:
            server.close()
        assert outcome.ok, outcome.message
        assert outcome.latency < 2.0

    async def test_redirects(self) -> None:
        """A redirect is followed to its target, unless follow_redirects is off."""
        server = KeepAliveServer()
        try:
            followed = await run(monitor(url=f"{server.url}/old"))
            kept = await run(monitor(url=f"{server.url}/old", follow_redirects=False))
        finally:
            server.close()
        assert followed.context["status"] == 200 and followed.context["url"].endswith("/new")
        assert followed.context["body"] == {"path": "/new"}
        assert kept.context["status"] == 302 and kept.context["header"]["location"] == "/new"

    async def test_cost_per_check(self) -> None:
        """A plain-HTTP check costs far less CPU than the same request through httpx."""
        import time

        server = KeepAliveServer()
        env = ProbeEnv()
        spec = monitor(url=f"{server.url}/health")
        try:
            await check(spec, env)
            started = time.process_time()
            for _ in range(30):
                await check(spec, env)
            plain = time.process_time() - started
            async with httpx.AsyncClient() as client:
                await client.get(spec.url)
                started = time.process_time()
                for _ in range(30):
                    await client.get(spec.url)
                general = time.process_time() - started
        finally:
            await env.aclose()
            server.close()
        assert plain < general, (plain, general)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_target(certificate: tuple[Path, Path]) -> Iterator[int]:
    cert, key = certificate

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


class TestTcpTls:
    async def test_tcp(self, target: Target) -> None:
        """A TCP monitor passes when the port accepts, fails when it refuses."""
        assert (await run(monitor(type="tcp", host="127.0.0.1", port=target.port))).ok
        closed = await run(monitor(type="tcp", host="127.0.0.1", port=free_port()))
        assert not closed.ok

    async def test_tls_certificate_days(
        self, tls_target: int, certificate: tuple[Path, Path]
    ) -> None:
        """A TLS monitor reads the certificate's remaining days; cert_days > 14 passes, > 60 fails."""
        cert, _ = certificate
        common = {"type": "tls", "host": "127.0.0.1", "port": tls_target, "ca_file": str(cert)}
        good = await run(monitor(**common))
        assert good.ok, good.message
        assert 29 < good.context["cert_days"] <= 30
        bad = await run(monitor(**common, conditions=["cert_days > 60"]))
        assert not bad.ok

    async def test_untrusted_certificate_fails(self, tls_target: int) -> None:
        """Without the CA, the self-signed certificate is refused."""
        outcome = await run(monitor(type="tls", host="127.0.0.1", port=tls_target))
        assert not outcome.ok and "TLS" in outcome.message

    async def test_https_monitor_sees_cert_days(
        self, tls_target: int, certificate: tuple[Path, Path]
    ) -> None:
        """An HTTPS monitor can put a condition on cert_days too."""
        cert, _ = certificate
        outcome = await run(
            monitor(
                url=f"https://127.0.0.1:{tls_target}/",
                ca_file=str(cert),
                conditions=["status == 200", "cert_days > 14"],
            )
        )
        assert outcome.ok, outcome.message


class TestPrometheus:
    EXPOSITION = """# HELP process_resident_memory_bytes Resident memory.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes {rss}
# TYPE http_requests_total counter
http_requests_total{{status="200"}} {ok}
http_requests_total{{status="500"}} {errors}
"""

    def test_expressions(self) -> None:
        """Selectors sum matching samples; arithmetic, aggregates and label regexes work."""
        samples = parse_samples(self.EXPOSITION.format(rss=268435456, ok=90, errors=10))
        assert Expression("process_resident_memory_bytes / 536870912 * 100").evaluate(
            samples, now=0
        ) == pytest.approx(50.0)
        rate = Expression('sum(http_requests_total{status=~"5.."}) / sum(http_requests_total)')
        assert rate.evaluate(samples, now=0) == pytest.approx(0.1)
        assert Expression("count(http_requests_total)").evaluate(samples, now=0) == 2
        assert Expression("missing_metric").evaluate(samples, now=0) is None

    def test_increase_between_scrapes(self) -> None:
        """increase() and rate() compare with the previous scrape; the first gives 0."""
        memory = CounterMemory()
        errors = Expression('increase(http_requests_total{status="500"})')
        first = parse_samples(self.EXPOSITION.format(rss=1, ok=90, errors=10))
        second = parse_samples(self.EXPOSITION.format(rss=1, ok=95, errors=15))
        assert errors.evaluate(first, now=0, memory=memory) == 0
        assert errors.evaluate(second, now=10, memory=memory) == 5
        per_second = Expression("rate(http_requests_total)")
        per_second.evaluate(first, now=0, memory=memory)
        assert per_second.evaluate(second, now=10, memory=memory) == pytest.approx(1.0)

    def test_bad_expression_is_explained(self) -> None:
        """A malformed expression raises MonitorError naming it."""
        with pytest.raises(MonitorError, match="metric expression"):
            Expression("sum(http_requests_total{status~5})")

    async def test_memory_warning_then_critical(self, target: Target) -> None:
        """Memory at 90% of the limit warns (85%), at 97% is critical (95%)."""
        limit = 512 * 1024 * 1024
        target.content_type = "text/plain; version=0.0.4"
        spec = monitor(
            type="prometheus",
            url=f"{target.url}/metrics",
            metrics={"memory_pct": f"process_resident_memory_bytes / {limit} * 100"},
            warning=["memory_pct < 85"],
            conditions=["memory_pct < 95"],
        )
        levels = []
        for fraction in (0.5, 0.9, 0.97):
            target.body = self.EXPOSITION.format(rss=int(limit * fraction), ok=1, errors=0)
            outcome = await run(spec)
            levels.append(outcome.level)
        assert levels == ["ok", "warning", "critical"]

    async def test_memory_pct_of_the_service_memory(self, target: Target) -> None:
        """memory_pct is ready-made: resident memory against [service] memory (or memory_limit)."""
        target.content_type = "text/plain; version=0.0.4"
        target.body = self.EXPOSITION.format(rss=460 * 1024 * 1024, ok=1, errors=0)
        spec = spec_from(
            '[service]\nname = "shop"\nmemory = "512mb"\n[[monitors]]\nname = "mem"\n'
            f'type = "prometheus"\nurl = "{target.url}/metrics"\n'
            'warning = ["memory_pct < 85"]\nconditions = ["memory_pct < 95"]\n'
            '[[monitors]]\nname = "small"\ntype = "prometheus"\n'
            f'url = "{target.url}/metrics"\nmemory_limit = "460mb"\n'
            'conditions = ["memory_pct < 95"]\n'
        )
        env = ProbeEnv.for_spec(spec, root=Path.cwd())
        try:
            mem = await check(spec.monitors[0], env)
            small = await check(spec.monitors[1], env)
        finally:
            await env.aclose()
        assert mem.level == "warning"
        assert mem.context["memory_pct"] == pytest.approx(460 / 512 * 100)
        assert small.level == "critical" and small.context["memory_pct"] == pytest.approx(100)

    async def test_error_rate_between_scrapes(self, target: Target) -> None:
        """error_rate is the 5xx share of the requests since the previous scrape."""
        target.content_type = "text/plain; version=0.0.4"
        spec = monitor(
            type="prometheus",
            url=f"{target.url}/metrics",
            conditions=["error_rate < 5%"],
        )
        env = ProbeEnv()
        seen = []
        try:
            for ok, errors in ((100, 0), (190, 10), (290, 10), (300, 30)):
                target.body = self.EXPOSITION.format(rss=1, ok=ok, errors=errors)
                outcome = await check(spec, env)
                seen.append((round(outcome.context["error_rate"], 3), outcome.level))
        finally:
            await env.aclose()
        assert seen == [(0, "ok"), (0.1, "critical"), (0, "ok"), (round(20 / 30, 3), "critical")]
        assert "memory_pct" not in outcome.context
        assert outcome.context["requests"] == 30


class TestHeartbeat:
    SPEC = '[service]\nname = "shop"\n[[monitors]]\nname = "backup"\ntype = "heartbeat"\ninterval = "1h"\ngrace = "5m"\n'

    def _env(self, store: Store, spec: Spec, clock: FakeClock) -> ProbeEnv:
        _service, ids = sync_monitors(store, spec)
        return ProbeEnv(last_ping=lambda name: last_ping(store, ids[name]), now=clock.now)

    async def test_missing_ping_is_a_failure(self, store: Store) -> None:
        """No ping within interval + grace fails; a ping makes it pass; a fail ping fails."""
        spec = spec_from(self.SPEC)
        clock = FakeClock(utcnow())
        env = self._env(store, spec, clock)
        monitor_spec = spec.monitors[0]
        assert (await check(monitor_spec, env)).ok
        clock.advance(3600 + 301)
        assert not (await check(monitor_spec, env)).ok
        record_ping(store, "backup", clock=clock)
        assert (await check(monitor_spec, env)).ok
        record_ping(store, "backup", status="fail", clock=clock)
        failed = await check(monitor_spec, env)
        assert not failed.ok and failed.context["last_status"] == "fail"

    def test_unknown_monitor(self, store: Store) -> None:
        """A ping for a monitor that does not exist is refused."""
        with pytest.raises(MonitorError, match="no heartbeat monitor"):
            record_ping(store, "nope")

    async def test_routes(self, store: Store) -> None:
        """/ping/<monitor> and /ping/<monitor>/fail record pings; other names are 404."""
        from starlette.applications import Starlette

        from controltower.monitor import heartbeat_routes

        spec = spec_from(self.SPEC)
        app = Starlette(routes=heartbeat_routes(store, spec))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tower") as client:
            assert (await client.post("/ping/backup")).json()["status"] == "up"
            assert (await client.get("/ping/backup/fail")).json()["status"] == "fail"
            assert (await client.get("/ping/other")).status_code == 404
        _service, ids = sync_monitors(store, spec)
        at, status, _created = last_ping(store, ids["backup"])
        assert at is not None and status == "fail"


class FlyApi:
    """The documented Fly Machines endpoint GET /v1/apps/{app}/machines, locally."""

    def __init__(self, machines: list[dict[str, object]]) -> None:
        self.machines = machines
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("authorization") != "Bearer fly-token":
                    self.send_response(401)
                    self.end_headers()
                    return
                if self.path != "/v1/apps/shop/machines":
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(api.machines).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fly_machine(number: str, state: str, check: str | None = None) -> dict[str, object]:
    machine: dict[str, object] = {
        "id": number,
        "state": state,
        "region": "cdg",
        "config": {
            "image": "r:1",
            # Tower writes the process group on every machine it creates (and flyctl on
            # every machine it deploys); the driver serves only its own group's machines.
            "metadata": {
                "fly_process_group": "app",
                "tower_release": "rel1",
                "tower_version": "v1",
            },
        },
    }
    if check is not None:
        machine["checks"] = [{"name": "http", "status": check}]
    return machine


class TestMachine:
    async def test_local_driver(self, tmp_path: Path) -> None:
        """Through the local driver's agent: two running instances pass; one stopped fails."""
        from controltower.deploy.drivers.base import ReleaseInfo
        from controltower.deploy.drivers.factory import make_driver
        from controltower.deploy.local.client import AgentClient

        spec = spec_from(
            '[service]\nname = "shop"\n[deploy]\ndriver = "local"\n[deploy.local]\n'
            'command = "{python} -m http.server {port} --bind 127.0.0.1"\n'
            f'state_dir = "state"\nproxy_port = {free_port()}\n'
            '[[monitors]]\nname = "machines"\ntype = "machine"\n'
            'conditions = ["running >= 2", "crashed == 0"]\n'
        )
        driver = make_driver(spec, root=tmp_path)
        try:
            driver.prepare()
            driver.start(ReleaseInfo("rel1", "v1"), 2)
            env = ProbeEnv.for_spec(spec, root=tmp_path)
            outcome = await run(spec.monitors[0], env)
            for _ in range(30):
                if outcome.ok:
                    break
                await asyncio.sleep(0.1)
                outcome = await run(spec.monitors[0], ProbeEnv.for_spec(spec, root=tmp_path))
            assert outcome.ok, outcome.message
            assert outcome.context["versions"] == ["v1"] and outcome.context["total"] == 2
            driver.stop("rel1", count=1, drain=0)
            outcome = await run(spec.monitors[0], ProbeEnv.for_spec(spec, root=tmp_path))
            assert not outcome.ok
            assert outcome.context["running"] == 1
            assert "running >= 2: observed 1 (failed)" in outcome.message
        finally:
            # The agent is this process's child: wait for it to remove its file, not its pid.
            AgentClient(tmp_path / "state").shutdown(wait=0)
            for _ in range(150):
                if not (tmp_path / "state" / "agent.json").exists():
                    break
                await asyncio.sleep(0.1)
            driver.close()

    async def test_agent_not_running(self, tmp_path: Path) -> None:
        """With no agent for the local driver, the check fails saying so and what to do."""
        spec = spec_from(
            '[service]\nname = "shop"\n[deploy]\ndriver = "local"\n[deploy.local]\n'
            'command = "run"\n[[monitors]]\nname = "m"\ntype = "machine"\n'
        )
        outcome = await run(spec.monitors[0], ProbeEnv.for_spec(spec, root=tmp_path))
        assert not outcome.ok
        assert "the local driver cannot list instances" in outcome.message
        assert "local agent is not running" in outcome.message

    async def test_fly_machines_api(self) -> None:
        """On Fly, states and checks of tower's machines come from the Machines API."""
        fly = FlyApi(
            [
                fly_machine("1", "started", "passing"),
                fly_machine("2", "started", "critical"),
                fly_machine("3", "stopped"),
                fly_machine("4", "failed"),
            ]
        )
        try:
            spec = spec_from(
                f'[service]\nname = "shop"\n[deploy]\ndriver = "fly"\n'
                f'[deploy.fly]\napp = "shop"\napi_url = "{fly.url}"\n'
                '[[monitors]]\nname = "machines"\ntype = "machine"\n'
                'conditions = ["running >= 2", "crashed == 0"]\n'
            )
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("FLY_API_TOKEN", "fly-token")
                env = ProbeEnv.for_spec(spec, root=Path.cwd())
                outcome = await run(spec.monitors[0], env)
            context = outcome.context
            assert (context["running"], context["stopped"], context["crashed"]) == (2, 1, 1)
            assert [item["region"] for item in context["instances"]] == ["cdg"] * 4
            assert not outcome.ok
            with pytest.MonkeyPatch.context() as patch:
                patch.delenv("FLY_API_TOKEN", raising=False)
                no_token = await run(spec.monitors[0], ProbeEnv.for_spec(spec, root=Path.cwd()))
            assert "FLY_API_TOKEN" in no_token.message
        finally:
            fly.close()
