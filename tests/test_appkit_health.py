"""Health: concurrent bounded checks, caching, single flight, IETF bodies, ASGI and WSGI endpoints."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

from controltower.appkit import (
    Check,
    CheckFailed,
    Health,
    Observation,
    check,
    checks,
)
from controltower.exceptions import CheckError
from controltower.testing import FakeClock
from tests.appkit_support import (
    ApiServer,
    BlackHole,
    HangingHttpServer,
    closed_port,
    serve_asgi,
    serve_wsgi,
)


class Counting(Check):
    """A check that counts its runs and can be told to hang, fail or be slow."""

    def __init__(
        self, name: str = "dep", *, delay: float = 0.0, fail: bool = False, **options: object
    ) -> None:
        super().__init__(name, **options)  # type: ignore[arg-type]
        self.delay = delay
        self.fail = fail
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise CheckFailed(f"{self.name} is down")


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


class TestRunning:
    async def test_checks_run_concurrently(self) -> None:
        """Three checks of 200 ms each take about 200 ms together, not 600 ms."""
        health = Health(*(Counting(f"c{i}", delay=0.2) for i in range(3)))
        started = time.perf_counter()
        report = await health.run()
        assert report.status == "pass"
        assert time.perf_counter() - started < 0.45

    async def test_hanging_check_is_bounded_by_its_timeout(self) -> None:
        """A check that never finishes fails with a timeout output after its own timeout."""
        health = Health(Counting("slow", delay=60, timeout=0.2))
        started = time.perf_counter()
        report = await health.run()
        elapsed = time.perf_counter() - started
        assert 0.19 <= elapsed < 0.6
        (result,) = report.results
        assert result.status == "fail"
        assert result.output == "slow did not answer within 200 ms"
        assert report.http_status == 503

    async def test_critical_failure_is_fail_non_critical_is_warn(self) -> None:
        """A critical check down gives fail/503; a non-critical one gives warn/200."""
        soft = Health(Counting("db"), Counting("stripe", fail=True, critical=False))
        report = await soft.run()
        assert (report.status, report.http_status) == ("warn", 200)
        assert report.results[1].status == "warn" and report.results[1].output == "stripe is down"
        hard = Health(Counting("db", fail=True), Counting("stripe", critical=False))
        assert (await hard.run()).http_status == 503

    async def test_observation_sets_value_unit_and_status(self) -> None:
        """A check returning an Observation reports its value, unit, status and output."""

        @check("queue", critical=False)
        async def queue() -> Observation:
            return Observation(120, "jobs", "warn", "queue is long")

        body = (await Health(queue).run()).as_ietf()
        entry = body["checks"]["queue:responseTime"][0]
        assert (
            entry["observedValue"],
            entry["observedUnit"],
            entry["status"],
            entry["output"],
        ) == (
            120,
            "jobs",
            "warn",
            "queue is long",
        )
        assert body["status"] == "warn"

    async def test_function_checks_sync_async_and_false(self) -> None:
        """Sync functions run in a thread; returning False or raising fails the check."""
        thread_names: list[str] = []

        def sync_ok() -> bool:
            thread_names.append(threading.current_thread().name)
            return True

        def returns_false() -> bool:
            return False

        async def raises() -> None:
            raise RuntimeError("boom")

        report = await Health(
            check("a")(sync_ok), check("b")(returns_false), check("c")(raises)
        ).run()
        statuses = [r.status for r in report.results]
        assert statuses == ["pass", "fail", "fail"]
        assert thread_names and thread_names[0] != threading.main_thread().name
        assert report.results[1].output == "b reported failure"
        assert report.results[2].output == "c unreachable: boom (RuntimeError)"

    def test_invalid_options_are_refused(self) -> None:
        """A zero timeout or a non-check argument is refused with a clear message."""
        with pytest.raises(CheckError, match="timeout must be > 0"):
            Counting(timeout=0)
        with pytest.raises(CheckError, match="wrap functions"):
            Health(lambda: None)  # type: ignore[arg-type]


class TestCaching:
    async def test_success_and_failure_ttls(self) -> None:
        """Passing results are reused for success_ttl, failing ones for failure_ttl."""
        clock = FakeClock()
        good, bad = Counting("good"), Counting("bad", fail=True)
        health = Health(good, bad, success_ttl=10, failure_ttl=1, clock=clock)
        await health.run()
        await health.run()
        assert (good.runs, bad.runs) == (1, 1)
        clock.advance(1.5)
        await health.run()
        assert (good.runs, bad.runs) == (1, 2)
        clock.advance(10)
        await health.run()
        assert (good.runs, bad.runs) == (2, 3)

    async def test_per_check_ttl_overrides(self) -> None:
        """A check's own success_ttl wins over the Health default."""
        clock = FakeClock()
        fresh = Counting("fresh", success_ttl=0)
        health = Health(fresh, success_ttl=60, clock=clock)
        await health.run()
        await health.run()
        assert fresh.runs == 2

    async def test_concurrent_requests_share_one_run(self) -> None:
        """Fifty concurrent readiness calls run the database check once (no thundering herd)."""
        db = Counting("db", delay=0.1)
        health = Health(db, success_ttl=0)
        reports = await asyncio.gather(*(health.run() for _ in range(50)))
        assert db.runs == 1
        assert {r.status for r in reports} == {"pass"}

    async def test_cancelled_request_does_not_cancel_the_shared_run(self) -> None:
        """A client going away does not cancel the run other requests wait for."""
        db = Counting("db", delay=0.1)
        health = Health(db, success_ttl=0)
        first = asyncio.ensure_future(health.run())
        second = asyncio.ensure_future(health.run())
        await asyncio.sleep(0.02)
        first.cancel()
        assert (await second).status == "pass"
        assert db.runs == 1

    async def test_invalidate_forgets_results(self) -> None:
        """invalidate() makes the next readiness run every check again."""
        db = Counting("db")
        health = Health(db, success_ttl=60)
        await health.run()
        health.invalidate()
        await health.run()
        assert db.runs == 2


class TestBodies:
    async def test_ietf_body(self) -> None:
        """The readiness body follows the IETF health draft, plus timestamp and uptime."""
        clock = FakeClock()
        health = Health(Counting("db"), version="1.4.2", service_id="shop", clock=clock)
        clock.advance(5)
        body = (await health.run()).as_ietf(service_id="shop")
        assert (
            body["status"] == "pass" and body["version"] == "1.4.2" and body["releaseId"] == "1.4.2"
        )
        assert body["serviceId"] == "shop"
        assert body["timestamp"] == "2026-01-01T00:00:05.000Z" and body["uptime"] == 5.0
        entry = body["checks"]["db:responseTime"][0]
        assert set(entry) == {"componentType", "observedValue", "observedUnit", "status", "time"}
        assert entry["observedUnit"] == "ms" and isinstance(entry["observedValue"], float)

    async def test_simple_body(self) -> None:
        """The simple style says healthy or unhealthy, with timestamp and version."""
        report = await Health(Counting("db", fail=True), version="2").run()
        assert report.as_simple() == {
            "status": "unhealthy",
            "timestamp": report.as_simple()["timestamp"],
            "version": "2",
        }
        report = await Health(Counting("db"), version="2").run()
        assert report.as_simple()["status"] == "healthy"


@pytest.mark.postgres
class TestRealDependencies:
    async def test_real_postgres_passes(self, postgres_url: str) -> None:
        """The PostgreSQL check passes against a real server."""
        report = await Health(checks.postgres(postgres_url)).run()
        assert report.status == "pass", report.as_ietf()

    async def test_down_postgres_gives_503_with_secret_free_output(self) -> None:
        """A refused connection fails readiness with an output naming the cause, not the password."""
        url = f"postgresql://app:s3cr3t-pw@127.0.0.1:{closed_port()}/shop"
        health = Health(
            checks.postgres(url),
            checks.stripe("sk_live_abcdefgh12345678", api_base="http://127.0.0.1:1"),
        )
        report = await health.run()
        status, body, _ = health.render(report)
        assert status == 503
        text = body.decode()
        assert (
            "s3cr3t-pw" not in text
            and "sk_live_abcdefgh12345678" not in text
            and "Traceback" not in text
        )
        output = report.as_ietf()["checks"]["postgres:responseTime"][0]["output"]
        assert output.startswith("postgres unreachable: ") and "refused" in output.lower()

    @pytest.mark.slow
    @pytest.mark.xdist_group("appkit-heavy")
    def test_hanging_dependencies_over_http_stay_bounded(self, postgres_url: str) -> None:
        """A real PostgreSQL whose query hangs on a lock and a real HTTP server that never answers:
        readiness, served over HTTP by uvicorn, answers 503 within the largest timeout + 20 ms
        (best of five, measured by the client), and the healthy database still reports pass."""
        import psycopg

        from controltower.appkit import Health

        with psycopg.connect(postgres_url, autocommit=True) as setup:
            setup.execute("CREATE TABLE orders (id int)")
        holder = psycopg.connect(postgres_url)
        holder.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # held until rollback
        hanging_http = HangingHttpServer()
        health = Health(
            checks.postgres(postgres_url, timeout=2),
            checks.postgres(
                postgres_url, query="SELECT count(*) FROM orders", name="orders", timeout=0.3
            ),
            checks.http(f"{hanging_http.url}/status", name="billing", timeout=0.25),
            success_ttl=0,
            failure_ttl=0,
        )
        app = Starlette()
        health.mount(app)
        try:
            with serve_asgi(app) as url, httpx.Client(timeout=5) as client:
                client.get(f"{url}/api/health/live")  # connection and server warm
                client.get(f"{url}/api/health")
                responses = [client.get(f"{url}/api/health") for _ in range(5)]
        finally:
            holder.rollback()
            holder.close()
            hanging_http.close()
        assert {r.status_code for r in responses} == {503}
        body = responses[-1].json()
        assert body["checks"]["postgres:responseTime"][0]["status"] == "pass"
        assert (
            body["checks"]["orders:responseTime"][0]["output"]
            == "orders did not answer within 300 ms"
        )
        assert (
            body["checks"]["billing:responseTime"][0]["output"]
            == "billing did not answer within 250 ms"
        )
        assert hanging_http.received >= 5, "the HTTP dependency really received the requests"
        elapsed = sorted(r.elapsed.total_seconds() for r in responses)
        assert elapsed[0] < 0.3 + 0.020, elapsed
        assert elapsed[-1] < 1.0, elapsed

    @pytest.mark.slow
    @pytest.mark.xdist_group("appkit-heavy")
    def test_unreachable_postgres_is_bounded_too(self, black_hole: BlackHole) -> None:
        """A PostgreSQL host that accepts TCP and never speaks (a dead proxy) is bounded the same way."""
        health = Health(
            checks.postgres(f"postgresql://app:pw@127.0.0.1:{black_hole.port}/x", timeout=0.2)
        )
        started = time.perf_counter()
        report = asyncio.run(health.run())
        assert time.perf_counter() - started < 0.2 + 0.2
        assert report.results[0].output == "postgres did not answer within 200 ms"


class TestEndpoints:
    def test_asgi_middleware_serves_paths_and_passes_the_rest(self) -> None:
        """health.asgi(app) answers live, ready and simple paths and hands others to the app."""

        async def app(scope: dict[str, object], receive: object, send: object) -> None:
            await send({"type": "http.response.start", "status": 418, "headers": []})  # type: ignore[operator]
            await send({"type": "http.response.body", "body": b"teapot"})  # type: ignore[operator]

        health = Health(Counting("db", fail=True), simple_path="/healthz")
        with serve_asgi(health.asgi(app)) as url:
            ready = httpx.get(f"{url}/api/health")
            assert ready.status_code == 503
            assert ready.headers["content-type"] == "application/health+json"
            assert ready.headers["cache-control"] == "no-store"
            live = httpx.get(f"{url}/api/health/live")
            assert live.status_code == 200 and live.json()["status"] == "pass"
            assert httpx.get(f"{url}/healthz").json()["status"] == "unhealthy"
            assert httpx.post(f"{url}/api/health").status_code == 405
            assert httpx.get(f"{url}/other").status_code == 418

    def test_fastapi_mount(self) -> None:
        """health.mount(fastapi_app) adds the routes next to the app's own."""
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/hello")
        def hello() -> dict[str, str]:
            return {"hello": "world"}

        Health(Counting("db"), version="9").mount(app)
        with serve_asgi(app) as url:
            assert httpx.get(f"{url}/api/health").json()["version"] == "9"
            assert httpx.get(f"{url}/hello").json() == {"hello": "world"}

    def test_flask_mount_runs_checks_on_the_background_loop(self) -> None:
        """On Flask (WSGI), readiness runs async checks on one background loop, shared by threads."""
        from flask import Flask

        db = Counting("db", delay=0.1)
        health = Health(
            db, checks.tcp("127.0.0.1", closed_port(), name="cache", critical=False), success_ttl=0
        )
        app = Flask(__name__)
        health.mount(app)
        with serve_wsgi(app) as url, httpx.Client() as client:
            results: list[httpx.Response] = []
            threads = [
                threading.Thread(target=lambda: results.append(client.get(f"{url}/api/health")))
                for _ in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert {r.status_code for r in results} == {200}
            body = results[0].json()
            assert body["status"] == "warn"
            assert body["checks"]["cache:responseTime"][0]["output"].startswith(
                "cache unreachable: "
            )
            assert db.runs < 8
            assert client.get(f"{url}/api/health/live").status_code == 200

    def test_wsgi_middleware(self) -> None:
        """health.wsgi(app) wraps any WSGI app."""

        def app(environ: dict[str, object], start_response: object) -> list[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
            return [b"app"]

        with serve_wsgi(Health(Counting("db", fail=True)).wsgi(app)) as url:
            assert httpx.get(f"{url}/api/health").status_code == 503
            assert httpx.get(f"{url}/x").text == "app"

    def test_mount_refuses_unknown_apps(self) -> None:
        """mount() on something that is not Starlette, FastAPI or Flask says what to do instead."""
        with pytest.raises(TypeError, match=r"health\.asgi\(app\)"):
            Health().mount(object())


class TestHttpDependency:
    async def test_http_check_status_and_latency(self) -> None:
        """The HTTP check passes on 2xx/3xx, fails on other statuses, reports latency."""
        api = ApiServer()
        try:
            ok = checks.http(f"{api.url}/status", name="api")
            missing = checks.http(f"{api.url}/nope", name="api2")
            report = await Health(ok, missing).run()
            assert [r.status for r in report.results] == ["pass", "fail"]
            assert report.results[0].observed_unit == "ms"
            assert report.results[1].output == "api2 answered HTTP 404"
        finally:
            api.close()
