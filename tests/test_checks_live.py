"""Live checks against real HTTP servers on 127.0.0.1: the example app passes, a leaky one fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from controltower.checks import CheckContext, CheckRun, Status, run_checks, select
from controltower.spec import load_spec, parse_spec
from tests.conftest import EXAMPLE_APP


async def _run(
    spec_path: Path | None, url: str, spec_text: str | None = None, env: str | None = None
) -> CheckRun:
    spec = load_spec(spec_path, env=env) if spec_path else parse_spec(spec_text or "", env=env)
    root = spec_path.parent if spec_path else Path(".")
    async with httpx.AsyncClient(timeout=10) as client:
        ctx = CheckContext(spec=spec, root=root, url=url, client=client, environment=env)
        return await run_checks(ctx, select())


@pytest.mark.slow
@pytest.mark.xdist_group("checks-heavy")
class TestExampleApp:
    def test_gates_one_and_two_pass(self, example_app: Callable[..., str]) -> None:
        """The example app, run locally with its tower.toml, passes gates 1 and 2 with every live check run."""
        url = example_app()
        run = asyncio.run(_run(EXAMPLE_APP / "tower.toml", url, env="local"))
        blocking = [(f.id, f.message) for f in run.findings if f.status.blocks and f.gate <= 2]
        assert blocking == []
        assert run.gates[1].passed and run.gates[2].passed
        found = {f.id: f for f in run.findings}
        for check_id in (
            "health.liveness",
            "health.readiness",
            "health.latency",
            "observability.metrics",
            "security.headers",
            "leaks.files",
            "leaks.stack_traces",
            "leaks.server_version",
        ):
            assert found[check_id].status is Status.PASS, (check_id, found[check_id].message)
        assert found["security.headers"].data["grade"] in ("A+", "A", "A-", "B+", "B")
        assert found["health.latency"].data["p95_ms"] < 100
        # A local target is served over plain http: HTTPS is advice there, and says why.
        assert found["https.redirect"].status is Status.ADVICE
        assert "local target" in found["https.redirect"].advice_reason
        assert (
            found["fly.config"].status is Status.SKIP and found["docker.user"].status is Status.SKIP
        )

    def test_failing_readiness(self, example_app: Callable[..., str]) -> None:
        """When readiness answers 503 the health check fails gate 1."""
        url = example_app(APP_FAIL_HEALTH="1")
        run = asyncio.run(_run(EXAMPLE_APP / "tower.toml", url, env="local"))
        found = {f.id: f for f in run.findings}
        assert (
            found["health.readiness"].status is Status.FAIL
            and "503" in found["health.readiness"].message
        )
        assert not run.gates[1].passed

    def test_cli_gate_and_history(
        self, example_app: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`tower check --gate 2` exits 0 on the example app, stores the run, and --history shows it."""
        from controltower.cli.main import app

        monkeypatch.setenv("TOWER_DATABASE_URL", f"sqlite:///{tmp_path / 'tower.db'}")
        url = example_app()
        runner = CliRunner()
        spec = ["--spec", str(EXAMPLE_APP / "tower.toml")]
        result = runner.invoke(
            app, ["check", *spec, "--url", url, "--gate", "2", "--format", "json"]
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["gates"]["1"]["passed"] and report["gates"]["2"]["passed"]
        assert report["url"] == url and report["passed"] is True
        result = runner.invoke(app, ["check", *spec, "--history", "--format", "json"])
        history = json.loads(result.output)
        assert [h["id"] for h in history] == [report["id"]]


LEAKY_SPEC = """
[service]
name = "leaky"
target = "docker"
[health]
liveness = "/live"
readiness = "/ready"
required_fields = ["status", "version"]
[security]
min_grade = "B"
"""


@pytest.fixture
def leaky(httpserver: HTTPServer) -> str:
    html = (
        '<html><head><script src="/static/app.js"></script></head><body>'
        + "x" * 3000
        + "</body></html>"
    )
    httpserver.expect_request("/").respond_with_data(
        html,
        content_type="text/html",
        headers={"X-Powered-By": "Express", "Server": "nginx/1.18.0"},
    )
    httpserver.expect_request("/live").respond_with_data("OK", content_type="text/plain")
    httpserver.expect_request("/ready").respond_with_json({"status": "pass"})
    httpserver.expect_request("/static/app.js").respond_with_data(
        "console.log(1)", content_type="text/javascript"
    )
    httpserver.expect_request("/static/app.js.map").respond_with_json({"version": 3})
    httpserver.expect_request("/.env").respond_with_data("SECRET_KEY=abc\n")
    httpserver.expect_request("/.git/config").respond_with_data(
        "[core]\n\trepositoryformatversion = 0\n"
    )
    httpserver.expect_request("/metrics").respond_with_data(
        "this is { not prometheus", content_type="text/plain"
    )
    httpserver.expect_request("/tower-check-does-not-exist").respond_with_data(
        'Traceback (most recent call last):\n  File "/app/main.py", line 12, in handler\nKeyError',
        status=500,
    )
    return httpserver.url_for("/").rstrip("/")


class TestLeakyServer:
    def test_every_problem_found(self, leaky: str) -> None:
        """Leaks, bad health, invalid metrics, no headers and no compression each fail under their id."""
        run = asyncio.run(_run(None, leaky, LEAKY_SPEC))
        found = {f.id: f for f in run.findings}
        expected_failures = [
            "health.liveness",
            "health.readiness",
            "leaks.powered_by",
            "leaks.server_version",
            "leaks.source_maps",
            "leaks.files",
            "leaks.stack_traces",
            "observability.metrics",
            "security.headers",
            "performance.compression",
        ]
        for check_id in expected_failures:
            assert found[check_id].status is Status.FAIL, (check_id, found[check_id].message)
            assert found[check_id].fix is not None
        assert "version" in found["health.readiness"].message
        # A plain-http loopback URL: HTTPS is the platform's (tests/test_checks_tls.py judges it).
        assert found["https.redirect"].status is Status.SKIP
        assert found["security.headers"].data["grade"] == "D"
        assert "Content-Security-Policy:" in found["security.headers"].fix.lines  # type: ignore[union-attr]
        assert found["performance.caching"].status is Status.WARN
        assert not run.gates[1].passed and not run.gates[2].passed

    def test_latency_budget(self, httpserver: HTTPServer) -> None:
        """p95 over the configured samples is compared with the budget."""
        import time

        def slow(request: object) -> object:
            from werkzeug.wrappers import Response

            time.sleep(0.06)
            return Response('{"status": "pass"}', content_type="application/json")

        httpserver.expect_request("/ready").respond_with_handler(slow)
        spec = LEAKY_SPEC.replace(
            'required_fields = ["status", "version"]',
            'latency_budget = "20ms"\nsamples = 5\nrequired_fields = ["status"]',
        )
        url = httpserver.url_for("/").rstrip("/")

        async def go() -> CheckRun:
            async with httpx.AsyncClient(timeout=10) as client:
                ctx = CheckContext(spec=parse_spec(spec), root=Path("."), url=url, client=client)
                return await run_checks(ctx, select(["health.latency"]))

        finding = asyncio.run(go()).findings[0]
        assert finding.status is Status.FAIL and finding.data["p95_ms"] >= 60


class TestLoopback:
    def test_transport_checks_skip_a_local_http_url_on_fly(self, httpserver: HTTPServer) -> None:
        """With target fly, a plain-http loopback URL skips the HTTPS checks (the platform in
        front does TLS), as the header grade treats it; an http URL elsewhere still fails."""
        httpserver.expect_request("/").respond_with_data("ok")
        spec = parse_spec('[service]\nname = "shop"\ntarget = "fly"\n')
        for host in ("127.0.0.1", "localhost"):
            url = httpserver.url_for("/").rstrip("/").replace("localhost", host)

            async def go(url: str = url) -> CheckRun:
                async with httpx.AsyncClient(timeout=10) as client:
                    ctx = CheckContext(spec=spec, root=Path("."), url=url, client=client)
                    return await run_checks(ctx, select(["https."]))

            findings = {f.id: f for f in asyncio.run(go()).findings}
            for check_id in ("https.redirect", "https.certificate"):
                assert findings[check_id].status is Status.SKIP, (host, findings[check_id].message)
                assert "this machine" in findings[check_id].message
        from controltower.checks.live.local import is_local

        assert is_local("http://127.0.0.2:8000") and is_local("http://[::1]:80/")
        assert not is_local("http://shop.example.com") and not is_local("http://10.0.0.1")


def _registry_text(openmetrics: bool = False) -> str:
    from prometheus_client import (
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        Info,
        Summary,
        generate_latest,
    )
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    registry = CollectorRegistry()
    Counter("requests", "Requests.", ["method"], registry=registry).labels("GET").inc(3)
    Gauge("in_flight", "In flight.", registry=registry).set(2)
    Histogram("latency_seconds", "Latency.", ["route"], registry=registry).labels('/a"b\\').observe(
        0.2
    )
    Summary("size_bytes", "Size.", registry=registry).observe(512)
    Info("build", "Build.", registry=registry).info({"version": "1.2.3"})
    return (generate_openmetrics if openmetrics else generate_latest)(registry).decode()


INVALID_EXPOSITION = [
    ("foo 1 2 3\n", "line 1: not a sample"),
    ("foo{a=b} 1\n", "line 1: malformed labels on foo"),
    ('foo{a="1",a="2"} 1\n', "line 1: malformed labels on foo"),
    ("foo abc\n", "line 1: not a sample"),
    ("1foo 1\n", "line 1: not a sample"),
    ("# TYPE foo counter\n# TYPE foo gauge\nfoo 1\n", "line 2: second TYPE line for foo"),
    ("foo 1\n# TYPE foo counter\n", "line 2: TYPE for foo after its samples"),
    ('foo{a="b"} 1\nfoo{a="b"} 2\n', "line 2: foo with these labels repeats line 1"),
    ("# TYPE foo countr\nfoo 1\n", "line 1: TYPE 'countr' is not a metric type"),
    ("<html><body>metrics</body></html>\n", "line 1: not a sample"),
    ("\n", "no samples"),
]


class TestExposition:
    def test_real_exposition_is_valid(self) -> None:
        """prometheus_client's text and OpenMetrics output, with escaped labels, pass."""
        from controltower.checks.live.exposition import problems

        assert problems(_registry_text(), "text/plain; version=0.0.4; charset=utf-8") == []
        assert problems(_registry_text(True), "application/openmetrics-text; version=1.0.0") == []

    @pytest.mark.parametrize(
        ("text", "expected"), INVALID_EXPOSITION, ids=[i[1] for i in INVALID_EXPOSITION]
    )
    def test_invalid_exposition(self, text: str, expected: str) -> None:
        """What Prometheus would refuse is refused, with its line."""
        from controltower.checks.live.exposition import problems

        found = problems(text)
        assert any(p.startswith(expected) for p in found), found

    def test_content_type_and_eof(self) -> None:
        """An HTML answer and OpenMetrics without # EOF are refused."""
        from controltower.checks.live.exposition import problems

        assert problems("foo 1\n", "text/html")[0].startswith("content type text/html")
        assert problems("foo 1\n", "application/openmetrics-text") == [
            "OpenMetrics text does not end with # EOF"
        ]
