"""The public API of controltower.appkit is pinned and importing it stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import controltower.appkit as appkit


class TestPublicApi:
    def test_all_is_pinned(self) -> None:
        """__all__ lists exactly the supported names, and each one exists."""
        assert sorted(appkit.__all__) == [
            "CallbackSink",
            "Check",
            "CheckFailed",
            "CheckResult",
            "DsnSink",
            "ErrorCaptureMiddleware",
            "ErrorEvent",
            "ErrorHandler",
            "ErrorReporter",
            "FunctionCheck",
            "HeaderPolicy",
            "Health",
            "HealthEndpoint",
            "HealthMiddleware",
            "HealthReport",
            "HealthWSGI",
            "JsonlSink",
            "MemoryBackend",
            "Metrics",
            "MetricsMiddleware",
            "MetricsWSGI",
            "Observation",
            "PostgresBackend",
            "RateLimit",
            "RateLimitWSGI",
            "RedisBackend",
            "SecurityHeaders",
            "SecurityHeadersWSGI",
            "Sink",
            "Status",
            "StoreSink",
            "capture_errors",
            "check",
            "checks",
            "csp_nonce",
            "envelope",
            "parse_dsn",
            "redact",
            "secure",
        ]
        for name in appkit.__all__:
            assert hasattr(appkit, name)

    def test_import_is_light(self) -> None:
        """Importing appkit pulls in no CLI, ORM, spec model, metrics or client library."""
        heavy = (
            "typer",
            "rich",
            "sqlalchemy",
            "alembic",
            "psycopg",
            "redis",
            "httpx",
            "flask",
            "django",
            "fastapi",
            "pydantic",
            "prometheus_client",
            "croniter",
            "apprise",
            "controltower.spec",
            "controltower.cli",
        )
        code = (
            "import sys, json, controltower.appkit; "
            f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert json.loads(out) == []

    def test_using_appkit_loads_no_pydantic(self) -> None:
        """The names a Python app uses load their own modules only: still no pydantic or spec."""
        code = (
            "import sys, json; "
            "from controltower.appkit import Health, SecurityHeaders, capture_errors, RateLimit, checks; "
            "print(json.dumps([m for m in ('pydantic', 'controltower.spec', 'sqlalchemy') "
            "if m in sys.modules]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert json.loads(out) == []

    def test_import_takes_under_100_ms(self) -> None:
        """`import controltower.appkit` costs < 100 ms of CPU (best of three fresh interpreters).

        CPU time of the importing process, not wall time, so other work on the
        machine does not decide the result.
        """
        code = (
            "import time; t = time.process_time(); import controltower.appkit; "
            "print(time.process_time() - t)"
        )
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True
                ).stdout
            )
            for _ in range(3)
        ]
        assert min(runs) < 0.100, runs

    def test_lazy_names_resolve_and_unknown_names_fail(self) -> None:
        """Every public name resolves on first use; a misspelt one is an AttributeError."""
        from controltower.appkit import Health as health_cls
        from controltower.appkit._health import Health

        assert health_cls is Health
        with pytest.raises(AttributeError, match="no attribute 'Helth'"):
            _ = appkit.Helth  # type: ignore[attr-defined]


class TestDjango:
    def test_django_urls_and_route_middleware(self) -> None:
        """Django: health.django_urls() answers readiness; the middleware labels metrics by URL pattern."""
        script = r"""
import json, sys
import django
from django.conf import settings
settings.configure(
    DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="x" * 50,
    MIDDLEWARE=["controltower.appkit.django.RouteTemplateMiddleware"],
)
django.setup()
from django.http import JsonResponse
from django.urls import path
from django.core.wsgi import get_wsgi_application
from django.test import Client
from controltower.appkit import Health, Metrics, SecurityHeadersWSGI, check

@check("db")
def db() -> None:
    return None

health = Health(db, version="7")
urlpatterns = [path("items/<int:item_id>", lambda request, item_id: JsonResponse({"id": item_id}))]
urlpatterns += health.django_urls()
metrics = Metrics(process_metrics=False)
application = metrics.wsgi(SecurityHeadersWSGI(get_wsgi_application()))

from wsgiref.util import setup_testing_defaults
def call(path):
    environ = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = path
    seen = {}
    def start(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)
    result = application(environ, start)
    body = b"".join(result)
    getattr(result, "close", lambda: None)()
    return seen, body
ready, body = call("/api/health")
items, _ = call("/items/5")
call("/items/6")
_, exposition = call("/metrics")
print(json.dumps({
    "ready": ready["status"], "body": json.loads(body), "csp": items["headers"].get("content-security-policy", ""),
    "metrics": exposition.decode(),
}))
"""
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["ready"] == "200 OK" and out["body"]["version"] == "7"
        assert "nonce-" in out["csp"]
        assert (
            'http_requests_total{method="GET",route="/items/<int:item_id>",status="2xx"} 2.0'
            in out["metrics"]
        )
