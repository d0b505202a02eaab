"""The JSON API and ingestion endpoints, in process: auth, scopes, every resource, limits."""

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
from tests.serve_support import Seeded, fresh_database, seed, seed_spec

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
        """CSP reports (report-uri JSON and the Reporting API) posted with ?sentry_key= are
        grouped by directive and blocked origin in /api/v1/csp, scrubbed."""
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
        reporting_api = [
            {
                "type": "csp-violation",
                "url": "https://shop.example/cart",
                "body": {
                    "effectiveDirective": "script-src-elem",
                    "blockedURL": "https://x.example/b.js?v=2",
                    "documentURL": "https://shop.example/cart?token=abcdef123",
                },
            }
        ]
        response = api.client.post(
            f"/api/{info.id}/security/?sentry_key={info.public_key}",
            content=json.dumps(reporting_api),
            headers={"Content-Type": "application/reports+json"},
        )
        assert response.status_code == 204
        groups = {
            (g["directive"], g["blocked_uri"]): g for g in api.get("/api/v1/csp").json()["items"]
        }
        assert groups[("script-src", "https://x.example")]["count"] == 2
        elem = groups[("script-src-elem", "https://x.example")]
        assert elem["count"] == 1 and "abcdef123" not in json.dumps(elem)


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

    def test_heartbeat_pings(self, api: Api) -> None:
        """/ping/<heartbeat monitor> records a ping (and /fail a failed run); others are 404."""
        from controltower.store.models.monitor import MonitorState

        assert api.client.post("/ping/nightly").json()["status"] == "up"
        assert api.client.get("/ping/nightly/fail").json()["status"] == "fail"
        assert api.client.post("/ping/nope").status_code == 404
        with api.store.session() as session:
            state = session.query(MonitorState).filter_by(name="nightly").one()
            assert state.last_ping_at is not None and state.last_ping_status == "fail"

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


@pytest.fixture
def seeded(store: Store) -> Iterator[tuple[Api, Seeded]]:
    """The API over a store with monitors, an incident, releases, a readiness run and errors."""
    forget_tokens()
    facts = seed(store)
    context, projects = prepare(seed_spec(), store, monitors=False, notify=False)
    with TestClient(create_app(context)) as client:
        yield Api(client, store, {p.name: p for p in projects}), facts


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Api, Seeded]]:
    """The same, one per backend, for the tests that only read."""
    forget_tokens()
    with (
        fresh_database(request.param, tmp_path_factory.mktemp("api")) as url,
        Store.open(url) as store,
    ):
        facts = seed(store)
        context, projects = prepare(seed_spec(), store, monitors=False, notify=False)
        with TestClient(create_app(context)) as client:
            yield Api(client, store, {p.name: p for p in projects}), facts


class TestMonitorsApi:
    def test_list_and_one(self, shared: tuple[Api, Seeded]) -> None:
        """Monitors carry their service, latest level and uptime per window."""
        api, facts = shared
        items = api.get("/api/v1/monitors").json()["items"]
        by_name = {item["name"]: item for item in items}
        assert set(by_name) == {"api", "db"}
        assert by_name["api"]["level"] == "critical" and by_name["db"]["level"] == "ok"
        assert by_name["api"]["incident_id"] == facts.incident_id
        assert by_name["db"]["uptime"]["24h"] == 1.0
        assert 0.9 < by_name["api"]["uptime"]["24h"] < 1.0
        one = api.get(f"/api/v1/monitors/{facts.monitors['db']}").json()
        assert one["service"] == "shop" and one["type"] == "tcp"
        assert api.get(f"/api/v1/monitors?service_id={facts.service_id + 1}").json() == {
            "items": []
        }
        assert api.get("/api/v1/monitors/999999").status_code == 404

    def test_results_page_and_rollups(self, shared: tuple[Api, Seeded]) -> None:
        """Raw results page newest first; rollups sum checks and failures per bucket."""
        api, facts = shared
        path = f"/api/v1/monitors/{facts.monitors['api']}"
        first = api.get(f"{path}/results?limit=10").json()
        assert len(first["items"]) == 10 and first["next"] is not None
        assert first["items"][0]["ok"] is False
        second = api.get(f"{path}/results?limit=10&before={first['next']}").json()
        assert second["items"][0]["id"] < first["items"][-1]["id"]
        rollups = api.get(f"{path}/rollups?bucket=day&limit=5").json()
        assert rollups["bucket"] == "day"
        assert sum(r["checks"] for r in rollups["items"]) == 49
        assert sum(r["failures"] for r in rollups["items"]) == 2
        assert api.get(f"{path}/rollups?bucket=week").status_code == 400


class TestIncidentsApi:
    def test_list_filter_and_timeline(self, shared: tuple[Api, Seeded]) -> None:
        """Incidents list with their timeline; ?status=open and ?status=resolved filter."""
        api, facts = shared
        [incident] = api.get("/api/v1/incidents?status=open").json()["items"]
        assert incident["id"] == facts.incident_id and incident["status"] == "firing"
        assert incident["monitors"] == ["api"]
        assert incident["timeline"][0]["kind"] == "opened"
        assert api.get("/api/v1/incidents?status=resolved").json()["items"] == []
        assert api.get("/api/v1/incidents?status=bogus").status_code == 400

    def test_ack_then_resolve_with_reason(self, seeded: tuple[Api, Seeded]) -> None:
        """ack needs write, records who; resolve records the reason; a second resolve is 409."""
        api, facts = seeded
        path = f"/api/v1/incidents/{facts.incident_id}"
        assert api.post(f"{path}/ack", "read").status_code == 403
        acked = api.post(f"{path}/ack").json()
        assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "token:write")
        resolved = api.post(f"{path}/resolve", json={"reason": "restarted the pool"}).json()
        assert resolved["status"] == "resolved"
        assert resolved["timeline"][-1]["message"] == "restarted the pool"
        again = api.post(f"{path}/resolve")
        assert again.status_code == 409 and "already resolved" in again.json()["error"]["message"]
        assert api.post("/api/v1/incidents/424242/ack").status_code == 404


class TestSilencesApi:
    def test_add_list_expire(self, seeded: tuple[Api, Seeded]) -> None:
        """A silence is created for a duration, listed while active, and expired by DELETE."""
        api, facts = seeded
        created = api.post(
            "/api/v1/silences",
            json={
                "service_id": facts.service_id,
                "matchers": {"monitor": "api"},
                "duration": "2h",
                "comment": "migrating",
            },
        )
        assert created.status_code == 201, created.text
        silence = created.json()
        assert silence["active"] and silence["created_by"] == "token:write"
        listed = api.get(f"/api/v1/silences?service_id={facts.service_id}").json()["items"]
        assert [s["id"] for s in listed] == [silence["id"]]
        expired = api.client.delete(
            f"/api/v1/silences/{silence['id']}",
            headers={"Authorization": f"Bearer {api.tokens['write']}"},
        )
        assert expired.status_code == 200 and expired.json()["active"] is False
        assert api.get("/api/v1/silences").json()["items"] == []
        assert len(api.get("/api/v1/silences?all=true").json()["items"]) == 1

    def test_invalid_silences(self, seeded: tuple[Api, Seeded]) -> None:
        """Missing service, empty matchers, bad durations and unknown services are refused."""
        api, _ = seeded
        cases: list[tuple[dict[str, object], int]] = [
            ({"matchers": {"monitor": "api"}}, 400),
            ({"service_id": 1, "matchers": {}}, 400),
            ({"service_id": 1, "matchers": {"monitor": ""}}, 400),
            ({"service_id": 1, "matchers": {"monitor": "api"}, "duration": "soon"}, 400),
            ({"service_id": 1, "matchers": {"monitor": "api"}, "duration": -5}, 400),
            ({"service_id": 99999, "matchers": {"monitor": "api"}}, 404),
        ]
        for body, status in cases:
            assert api.post("/api/v1/silences", json=body).status_code == status, body
        assert api.get("/api/v1/silences?all=true").json()["items"] == []


class TestReleasesApi:
    def test_list_detail_and_dora(self, shared: tuple[Api, Seeded]) -> None:
        """Releases list newest first; one release has its step log; DORA counts the rollback."""
        api, facts = shared
        items = api.get("/api/v1/releases").json()["items"]
        assert [r["id"] for r in items] == [facts.bad_release, facts.good_release]
        assert items[0]["status"] == "rolled_back" and items[0]["service"] == "shop"
        assert [r["id"] for r in api.get("/api/v1/releases?status=succeeded").json()["items"]] == [
            facts.good_release
        ]
        detail = api.get(f"/api/v1/releases/{facts.bad_release}").json()
        assert [s["state"] for s in detail["steps"]] == [
            "starting",
            "canary 10%",
            "rolling_back",
            "rolled_back",
        ]
        assert api.get("/api/v1/releases/nope").status_code == 404
        dora = api.get("/api/v1/dora").json()
        assert (dora["deploys"], dora["succeeded"], dora["failed_changes"]) == (2, 1, 1)
        assert dora["change_failure_rate"] == 0.5


class TestReadinessApi:
    def test_runs_and_findings(self, shared: tuple[Api, Seeded]) -> None:
        """Readiness runs list with scores and gates; one run lists its findings."""
        api, facts = shared
        [run] = api.get("/api/v1/readiness").json()["items"]
        assert run["id"] == facts.readiness_run and run["passed"] is False
        assert run["overall"] is not None and "1" in run["gates"]
        detail = api.get(f"/api/v1/readiness/{facts.readiness_run}").json()
        assert {f["id"] for f in detail["findings"]} >= {"env.client_secret"}
        assert api.get("/api/v1/readiness/unknown").status_code == 404


class TestIngestCors:
    def test_preflight_and_headers(self, api: Api) -> None:
        """Browser SDKs get a preflight answer and can read the rate-limit headers."""
        info = api.projects["web"]
        preflight = api.client.options(
            f"/api/{info.id}/envelope/",
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "x-sentry-auth" in preflight.headers["access-control-allow-headers"].lower()
        sent = api.send(envelope(crash()))
        assert sent.headers["access-control-allow-origin"] == "*"
        assert "X-Sentry-Rate-Limits" in sent.headers["access-control-expose-headers"]

    def test_project_created_while_running_is_accepted(self, api: Api) -> None:
        """A project added to the store after start takes events at once, no restart."""
        from controltower.ingest.projects import ensure_project

        fresh = ensure_project(api.store, "late")
        response = api.client.post(
            f"/api/{fresh.id}/envelope/?sentry_key={fresh.public_key}", content=envelope(crash())
        )
        assert response.status_code == 200
        assert api.wait_stored(1)[0]["project"] == "late"
