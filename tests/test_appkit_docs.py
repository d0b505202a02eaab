"""The FastAPI and Flask snippets in docs/appkit.md run as written and do what they say."""

from __future__ import annotations

import logging
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.appkit_support import ApiServer, redis_server, serve_asgi, serve_wsgi
from tests.conftest import ROOT
from tests.test_appkit_errors import Ingest

STRIPE_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
ANON_KEY = "eyJhbGciOiJIUzI1NiJ9.anon.sig"


def snippet(name: str) -> str:
    text = (ROOT / "docs" / "appkit.md").read_text()
    match = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, f"snippet {name} not found in docs/appkit.md"
    return match.group(1)


def load(name: str, code: str) -> types.ModuleType:
    module = types.ModuleType(f"appkit_snippet_{name}")
    module.__file__ = f"<docs/appkit.md:{name}>"
    sys.modules[module.__name__] = module
    exec(compile(code, module.__file__, "exec"), module.__dict__)
    return module


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    server = Ingest()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(STRIPE_KEY, ANON_KEY)
    yield server
    server.close()


def close_reporters(module: types.ModuleType) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        reporter = getattr(handler, "reporter", None)
        if reporter is not None:
            reporter.close(5)


@pytest.mark.postgres
class TestSnippets:
    def test_fastapi_snippet(
        self, postgres_url: str, api: ApiServer, ingest: Ingest, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The FastAPI snippet is under 15 lines and gives readiness over Postgres, Stripe and
        Supabase, liveness, metrics, security headers and error capture of unhandled exceptions."""
        code = snippet("fastapi")
        assert len(code.strip().splitlines()) < 15
        for key, value in {
            "DATABASE_URL": postgres_url,
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_API_BASE": api.url,
            "SUPABASE_URL": api.url,
            "SUPABASE_ANON_KEY": ANON_KEY,
            "TOWER_DSN": ingest.dsn,
        }.items():
            monkeypatch.setenv(key, value)
        module = load("fastapi", code)
        app: Any = module.app

        @app.get("/crash")
        async def crash() -> None:
            raise RuntimeError("checkout exploded")

        try:
            with serve_asgi(app) as url, httpx.Client() as client:
                ready = client.get(f"{url}/api/health")
                assert ready.status_code == 200, ready.text
                body = ready.json()
                assert body["status"] == "pass", body
                assert set(body["checks"]) == {
                    "postgres:responseTime",
                    "stripe:responseTime",
                    "supabase:responseTime",
                }
                assert sorted(path for path, _ in api.requests) == ["/rest/v1/", "/v1/balance"]
                assert client.get(f"{url}/api/health/live").json()["status"] == "pass"
                assert httpx.get(f"{url}/crash").status_code == 500
                metrics = client.get(f"{url}/metrics").text
                assert (
                    'http_requests_total{method="GET",route="/crash",status="5xx"} 1.0' in metrics
                )
                assert "frame-ancestors 'none'" in ready.headers["content-security-policy"]
            (event,) = ingest.wait_for(1)
            assert event["tags"]["code"] == "unhandled_exception"
            assert event["extra"]["route"] == "/crash"
            assert event["exception"]["values"][-1]["value"] == "checkout exploded"
        finally:
            close_reporters(module)

    def test_flask_snippet(
        self, postgres_url: str, ingest: Ingest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The Flask snippet is under 15 lines and gives readiness, metrics, headers and error capture."""
        code = snippet("flask")
        assert len(code.strip().splitlines()) < 15
        with redis_server(tmp_path) as redis_url:
            monkeypatch.setenv("DATABASE_URL", postgres_url)
            monkeypatch.setenv("REDIS_URL", redis_url)
            monkeypatch.setenv("TOWER_DSN", ingest.dsn)
            module = load("flask", code)
            app: Any = module.app

            @app.get("/crash")
            def crash() -> str:
                raise RuntimeError("flask exploded")

            try:
                with serve_wsgi(app) as url, httpx.Client() as client:
                    ready = client.get(f"{url}/api/health")
                    assert ready.status_code == 200, ready.text
                    assert ready.json()["status"] == "pass", ready.text
                    assert set(ready.json()["checks"]) == {
                        "postgres:responseTime",
                        "redis:responseTime",
                    }
                    assert client.get(f"{url}/crash").status_code == 500
                    assert 'route="/crash",status="5xx"' in client.get(f"{url}/metrics").text
                    assert ready.headers["x-content-type-options"] == "nosniff"
                (event,) = ingest.wait_for(1)
                assert event["exception"]["values"][-1]["value"] == "flask exploded"
            finally:
                close_reporters(module)
