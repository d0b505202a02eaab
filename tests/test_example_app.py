"""The example app really runs, reports its version, and misbehaves when told to."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import EXAMPLE_APP, free_port

Start = Callable[..., str]


class TestExampleApp:
    def test_health_is_deep_and_ietf_shaped(self, example_app: Start) -> None:
        """Readiness checks the app's database and answers IETF health JSON with its version."""
        url = example_app(APP_VERSION="1.4.2")
        response = httpx.get(f"{url}/api/health")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/health+json")
        body = response.json()
        assert body["status"] == "pass" and body["version"] == "1.4.2"
        assert body["checks"]["database:responseTime"][0]["observedUnit"] == "ms"

    def test_simple_health_and_metrics(self, example_app: Start) -> None:
        """The simple health endpoint says healthy; /metrics counts requests by route template."""
        url = example_app()
        assert httpx.get(f"{url}/api/simple-health").json()["status"] == "healthy"
        httpx.get(f"{url}/api/items")
        metrics = httpx.get(f"{url}/metrics").text
        assert 'http_requests_total{method="GET",route="/api/items",status="2xx"} 1.0' in metrics

    def test_security_headers(self, example_app: Start) -> None:
        """Responses carry HSTS, nosniff, a CSP with frame-ancestors 'none', and no Server header."""
        response = httpx.get(example_app())
        assert "max-age=63072000" in response.headers["strict-transport-security"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "server" not in response.headers

    def test_fail_health(self, example_app: Start) -> None:
        """APP_FAIL_HEALTH makes readiness 503 while liveness stays 200."""
        url = example_app(APP_FAIL_HEALTH="1")
        response = httpx.get(f"{url}/api/health")
        assert response.status_code == 503
        assert response.json()["status"] == "fail"
        assert httpx.get(f"{url}/api/health/live").status_code == 200

    def test_error_rate(self, example_app: Start) -> None:
        """APP_ERROR_RATE=0.3 fails about 30% of requests; health endpoints are never failed."""
        url = example_app(APP_ERROR_RATE="0.3", APP_SEED="7")
        with httpx.Client() as client:
            failures = sum(client.get(f"{url}/api/items").status_code == 500 for _ in range(300))
            assert {client.get(f"{url}/api/health").status_code for _ in range(20)} == {200}
        assert 50 <= failures <= 130

    def test_latency(self, example_app: Start) -> None:
        """APP_LATENCY_MS adds latency to every non-health request."""
        url = example_app(APP_LATENCY_MS="120")
        response = httpx.get(f"{url}/api/items")
        assert response.elapsed.total_seconds() >= 0.12

    def test_database_down_gives_503_without_secrets(self, example_app: Start) -> None:
        """An unreachable database gives 503 with a useful output and no password."""
        url = example_app(APP_DATABASE="postgresql://app:hunter2@127.0.0.1:1/none")
        response = httpx.get(f"{url}/api/health", timeout=10)
        assert response.status_code == 503
        assert "hunter2" not in response.text
        assert (
            "database unreachable"
            in response.json()["checks"]["database:responseTime"][0]["output"]
        )

    def test_fail_start(self) -> None:
        """APP_FAIL_START makes the process exit instead of serving."""
        process = subprocess.run(
            [sys.executable, "-m", "uvicorn", "app:app", "--port", str(free_port())],
            cwd=EXAMPLE_APP,
            env={**os.environ, "APP_FAIL_START": "1"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert process.returncode != 0
        assert "startup failure injected" in process.stderr

    def test_version_everywhere(self, example_app: Start) -> None:
        """APP_VERSION is what liveness, readiness, the simple endpoint and the home page report."""
        url = example_app(APP_VERSION="2.0.1")
        assert httpx.get(f"{url}/api/health/live").json()["version"] == "2.0.1"
        assert httpx.get(f"{url}/api/simple-health").json()["version"] == "2.0.1"
        assert httpx.get(f"{url}/api/health").json()["releaseId"] == "2.0.1"
        assert "version 2.0.1" in httpx.get(url).text

    def test_injected_errors_reach_the_error_tracker(self, example_app: Start) -> None:
        """With TOWER_DSN set, each injected 500 is logged and shipped as an error event."""
        from tests.test_appkit_errors import Ingest

        ingest = Ingest()
        try:
            url = example_app(APP_ERROR_RATE="1", TOWER_DSN=ingest.dsn, APP_VERSION="3.1.0")
            assert httpx.get(f"{url}/api/items").status_code == 500
            (event,) = ingest.wait_for(1)
            assert event["tags"]["code"] == "injected_failure"
            assert event["release"] == "3.1.0" and event["level"] == "error"
        finally:
            ingest.shutdown()
            ingest.server_close()


@pytest.mark.postgres
class TestExampleAppOnPostgres:
    def test_health_checks_postgres(self, example_app: Start, postgres_url: str) -> None:
        """The example app runs on PostgreSQL too, and its health checks that database."""
        url = example_app(APP_DATABASE=postgres_url.replace("+psycopg", ""))
        body = httpx.get(f"{url}/api/health").json()
        assert body["status"] == "pass"
        assert body["checks"]["database:responseTime"][0]["componentType"] == "datastore"
        assert len(httpx.get(f"{url}/api/items").json()) == 3
