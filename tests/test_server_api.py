"""The JSON API and ingestion endpoints, in process: auth, scopes, errors, limits."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import pytest
import yaml
from starlette.routing import Route
from starlette.testclient import TestClient

from controltower.ingest.projects import ProjectInfo
from controltower.server import ServerContext, create_app, create_token
from controltower.server.api.common import forget_tokens
from controltower.server.factory import prepare
from controltower.spec import Spec, parse_spec
from controltower.store import Store

SPEC = """
[service]
name = "shop"

[server]
max_body_size = "64kb"
max_event_size = "32kb"
buffer_size = 50

[[server.projects]]
name = "web"
rate_limit = 100000

[[server.projects]]
name = "slow"
rate_limit = 2

[[monitors]]
name = "nightly"
type = "heartbeat"
interval = "1d"
grace = "1h"
"""


def envelope(*events: dict, event_id: str = "9ec79c33ec9942ab8353589fcb2e04dc") -> bytes:
    lines = [json.dumps({"event_id": event_id}).encode()]
    for event in events:
        payload = json.dumps(event).encode()
        lines.append(json.dumps({"type": "event", "length": len(payload)}).encode())
        lines.append(payload)
    return b"\n".join(lines) + b"\n"


def crash(kind: str = "ValueError", value: str = "boom") -> dict:
    return {
        "level": "error",
        "exception": {
            "values": [
                {
                    "type": kind,
                    "value": value,
                    "stacktrace": {
                        "frames": [{"module": "app", "function": "view", "in_app": True}]
                    },
                }
            ]
        },
    }


class Api:
    def __init__(self, client: TestClient, store: Store, projects: dict[str, ProjectInfo]) -> None:
        self.client = client
        self.store = store
        self.projects = projects
        self.tokens = {
            scope: create_token(store, scope, [scope])[0] for scope in ("read", "write", "ingest")
        }

    def get(self, path: str, scope: str = "read", **kwargs: object) -> object:
        return self.client.get(
            path, headers={"Authorization": f"Bearer {self.tokens[scope]}"}, **kwargs
        )

    def post(self, path: str, scope: str = "write", **kwargs: object) -> object:
        return self.client.post(
            path, headers={"Authorization": f"Bearer {self.tokens[scope]}"}, **kwargs
        )

    def send(
        self, body: bytes, project: str = "web", *, headers: dict[str, str] | None = None
    ) -> object:
        info = self.projects[project]
        auth = {"X-Sentry-Auth": f"Sentry sentry_key={info.public_key}, sentry_version=7"}
        return self.client.post(
            f"/api/{info.id}/envelope/", content=body, headers={**auth, **(headers or {})}
        )

    def wait_stored(self, count: int) -> list[dict]:
        deadline = time.monotonic() + 15
        delay = 0.02
        while True:
            items = self.get("/api/v1/issues").json()["items"]
            if sum(item["count"] for item in items) >= count or time.monotonic() > deadline:
                return items
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def build(store: Store, text: str = SPEC) -> tuple[ServerContext, dict[str, ProjectInfo], Spec]:
    spec = parse_spec(text, environ={})
    context, projects = prepare(spec, store)
    return context, {p.name: p for p in projects}, spec


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    forget_tokens()
    context, projects, _ = build(store)
    with TestClient(create_app(context)) as client:
        yield Api(client, store, projects)


class TestAuth:
    def test_no_token(self, api: Api) -> None:
        """Without a bearer token the API answers 401 with a JSON error."""
        response = api.client.get("/api/v1/issues")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_wrong_token(self, api: Api) -> None:
        """An unknown token is refused."""
        response = api.client.get("/api/v1/issues", headers={"Authorization": "Bearer tower_nope"})
        assert response.status_code == 401

    def test_scopes(self, api: Api) -> None:
        """read reads; write reads and changes; ingest does neither."""
        assert api.get("/api/v1/services", "read").status_code == 200
        assert api.get("/api/v1/services", "write").status_code == 200
        assert api.get("/api/v1/services", "ingest").status_code == 403
        assert api.post("/api/v1/issues/1/resolve", "read").status_code == 403

    def test_tokens_are_stored_hashed(self, api: Api) -> None:
        """The token value appears nowhere in the store, only its hash."""
        from controltower.store.models.server import ApiToken

        with api.store.session() as session:
            rows = list(session.query(ApiToken))
        stored = json.dumps([(r.token_hash, r.prefix, r.name) for r in rows])
        for value in api.tokens.values():
            assert value not in stored

    def test_revoked_token_is_refused(self, api: Api) -> None:
        """After DELETE /api/v1/tokens/<id> the token no longer works."""
        created = api.post("/api/v1/tokens", json={"name": "tmp", "scopes": ["read"]})
        assert created.status_code == 201
        token = created.json()["token"]
        assert (
            api.client.get(
                "/api/v1/services", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )
        assert (
            api.client.delete(
                f"/api/v1/tokens/{created.json()['id']}",
                headers={"Authorization": f"Bearer {api.tokens['write']}"},
            ).status_code
            == 204
        )
        assert (
            api.client.get(
                "/api/v1/services", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 401
        )

    def test_cannot_grant_wider_scopes(self, api: Api) -> None:
        """A write token cannot mint an ingest token."""
        response = api.post("/api/v1/tokens", json={"name": "x", "scopes": ["ingest"]})
        assert response.status_code == 403


class TestErrorsApi:
    def test_envelope_to_issue_to_event(self, api: Api) -> None:
        """Envelope events become issues and events readable through the API."""
        response = api.send(envelope(crash()))
        assert response.status_code == 200
        assert response.json() == {"id": "9ec79c33ec9942ab8353589fcb2e04dc"}
        api.send(envelope(crash(value="other"), event_id="1" * 32))
        [issue] = api.wait_stored(2)
        assert (issue["title"], issue["count"], issue["project"]) == ("ValueError: boom", 2, "web")
        detail = api.get(f"/api/v1/issues/{issue['id']}").json()
        assert detail["hours"][0]["count"] == 2
        events = api.get(f"/api/v1/issues/{issue['id']}/events").json()["items"]
        assert {e["event_id"] for e in events} == {"9ec79c33ec9942ab8353589fcb2e04dc", "1" * 32}
        one = api.get("/api/v1/events/9ec79c33-ec99-42ab-8353-589fcb2e04dc").json()
        assert one["exception"][0]["frames"][0]["function"] == "view"

    def test_store_endpoint_and_gzip(self, api: Api) -> None:
        """/store/ takes one JSON event; gzip bodies are decoded."""
        info = api.projects["web"]
        body = gzip.compress(json.dumps(crash("KeyError")).encode())
        response = api.client.post(
            f"/api/{info.id}/store/?sentry_key={info.public_key}",
            content=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert response.status_code == 200
        [issue] = api.wait_stored(1)
        assert issue["title"] == "KeyError: boom"

    def test_resolve_and_filters(self, api: Api) -> None:
        """resolve/unresolve/ignore change the status; ?status= filters; unknown ids are 404."""
        api.send(envelope(crash()))
        [issue] = api.wait_stored(1)
        resolved = api.post(f"/api/v1/issues/{issue['id']}/resolve")
        assert resolved.json()["status"] == "resolved"
        assert api.get("/api/v1/issues?status=unresolved").json()["items"] == []
        assert len(api.get("/api/v1/issues?status=resolved").json()["items"]) == 1
        assert api.get("/api/v1/issues?status=bogus").status_code == 400
        assert api.post("/api/v1/issues/999999/resolve").status_code == 404

    def test_pagination(self, api: Api) -> None:
        """limit and before page through issues, newest first."""
        api.send(envelope(*(crash(f"E{n}") for n in range(5))))
        api.wait_stored(5)
        first = api.get("/api/v1/issues?limit=2").json()
        second = api.get(f"/api/v1/issues?limit=2&before={first['next']}").json()
        assert len(first["items"]) == 2 and len(second["items"]) == 2
        assert first["items"][-1]["id"] > second["items"][0]["id"]

    def test_transactions_and_sessions_are_ignored(self, api: Api) -> None:
        """Items other than events are accepted and dropped."""
        body = b'{}\n{"type":"transaction"}\n{"type":"transaction"}\n{"type":"session"}\n{"init":true}\n'
        assert api.send(body).status_code == 200
        assert api.get("/api/v1/issues").json()["items"] == []

    def test_csp_reports(self, api: Api) -> None:
        """CSP reports posted with ?sentry_key= are grouped in /api/v1/csp."""
        info = api.projects["web"]
        report = {
            "csp-report": {
                "effective-directive": "script-src",
                "blocked-uri": "https://x.example/a.js",
            }
        }
        for _ in range(2):
            response = api.client.post(
                f"/api/{info.id}/security/?sentry_key={info.public_key}",
                content=json.dumps(report),
                headers={"Content-Type": "application/csp-report"},
            )
            assert response.status_code == 204
        [group] = api.get("/api/v1/csp").json()["items"]
        assert (group["directive"], group["blocked_uri"], group["count"]) == (
            "script-src",
            "https://x.example",
            2,
        )


class TestIngestLimits:
    def test_bad_key(self, api: Api) -> None:
        """A missing key is 401; another project's key is 403."""
        info = api.projects["web"]
        assert (
            api.client.post(f"/api/{info.id}/envelope/", content=envelope(crash())).status_code
            == 401
        )
        other = api.projects["slow"]
        response = api.client.post(
            f"/api/{info.id}/envelope/?sentry_key={other.public_key}", content=envelope(crash())
        )
        assert response.status_code == 403

    def test_body_too_large(self, api: Api) -> None:
        """Bodies over max_body_size, and events over max_event_size, are 413."""
        big = crash(value="x" * 40_000)
        assert api.send(envelope(big)).status_code == 413
        assert api.send(b"{}\n" + b"x" * 70_000).status_code == 413

    def test_rate_limit(self, api: Api) -> None:
        """Past the project's events per minute: 429 with Retry-After."""
        codes = [api.send(envelope(crash()), "slow").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        response = api.send(envelope(crash()), "slow")
        assert int(response.headers["retry-after"]) >= 1

    def test_buffer_full_is_429_not_loss(self, store: Store) -> None:
        """When the buffer is full the endpoint answers 429 rather than dropping events."""
        forget_tokens()
        context, projects, _ = build(store)
        client = TestClient(create_app(context))
        api = Api(client, store, projects)
        codes = [api.send(envelope(*(crash() for _ in range(10)))).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        assert len(context.ingestion.buffer) == 50

    def test_malformed_is_400(self, api: Api) -> None:
        """Garbage is a 400 with a reason."""
        response = api.send(b'{}\n{"type":"event","length":5}\nnot json\n')
        assert response.status_code == 400
        assert "JSON" in response.json()["detail"]


class TestServerEndpoints:
    def test_health_and_ready(self, api: Api) -> None:
        """/healthz is alive; /readyz checks the store and lists running services."""
        assert api.client.get("/healthz").json()["status"] == "pass"
        ready = api.client.get("/readyz").json()
        assert ready["status"] == "pass"
        assert "ingest-writer" in ready["services"]

    def test_metrics(self, api: Api) -> None:
        """/metrics exposes ingestion counters in Prometheus format."""
        api.send(envelope(crash()))
        api.wait_stored(1)
        text = api.client.get("/metrics").text
        assert 'tower_ingest_events_accepted_total{project="web"} 1.0' in text
        assert "tower_ingest_events_stored_total 1.0" in text

    def test_unknown_path_is_json_404(self, api: Api) -> None:
        """Unknown paths answer a JSON error."""
        response = api.client.get("/nope")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


class TestOpenApi:
    def test_document_matches_routes(self, api: Api) -> None:
        """Every route is documented with its methods, and every documented path exists."""
        document = yaml.safe_load(api.client.get("/api/openapi.yaml").text)
        documented = {
            (path, method.upper())
            for path, item in document["paths"].items()
            for method in item
            if method != "parameters"
        }
        served = set()
        for route in api.client.app.routes:
            if isinstance(route, Route) and route.include_in_schema:
                path = route.path.replace(":int}", "}")
                served |= {(path, m) for m in route.methods or () if m != "HEAD"}
        assert documented == served


class TestServices:
    def test_extra_services_run_and_stop(self, store: Store) -> None:
        """Services given to the context start with the server and stop with it."""
        import asyncio

        events: list[str] = []

        class Ticker:
            name = "ticker"

            async def run(self, stop: asyncio.Event) -> None:
                events.append("started")
                await stop.wait()
                events.append("stopped")

        context, _, _ = build(store)
        context.services.append(Ticker())
        with TestClient(create_app(context)) as client:
            assert "ticker" in client.get("/readyz").json()["services"]
        assert events == ["started", "stopped"]
