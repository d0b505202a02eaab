"""Web-vitals beacons: the endpoint (auth, CORS, shapes, caps), storage and p75 read model."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from controltower.clock import utcnow
from controltower.ingest.errors import Rejected, TooLarge
from controltower.ingest.projects import ProjectInfo, ensure_project
from controltower.ingest.retention import prune_events
from controltower.ingest.vitals import (
    Beacon,
    for_monitor,
    page_of,
    parse_vitals,
    percentile,
    store_vitals,
    summarize,
    vitals_context,
)
from controltower.monitor.probes import CheckOutcome, ProbeEnv, check
from controltower.server import create_app, create_token
from controltower.server.api.common import forget_tokens
from controltower.server.factory import prepare
from controltower.spec import parse_spec
from controltower.spec.loader import SpecError
from controltower.store import Store

SPEC = """
[service]
name = "shop"

[server]
max_body_size = "64kb"

[[server.projects]]
name = "web"

[[server.projects]]
name = "locked"
allowed_origins = ["https://shop.example"]
vitals_rate_limit = 3
"""


class Client:
    def __init__(self, client: TestClient, store: Store, projects: dict[str, ProjectInfo]) -> None:
        self.client = client
        self.store = store
        self.projects = projects
        self.token = create_token(store, "reader", ["read"])[0]

    def beacon(
        self,
        body: object,
        project: str = "web",
        *,
        ref: str | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> object:
        info = self.projects[project]
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(
            f"/api/v1/vitals/{ref or info.id}?sentry_key={key or info.public_key}",
            content=content,
            headers={"Content-Type": "text/plain;charset=UTF-8", **(headers or {})},
        )

    def summary(self, query: str = "") -> dict:
        response = self.client.get(
            f"/api/v1/vitals{query}", headers={"Authorization": f"Bearer {self.token}"}
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def api(store: Store) -> Iterator[Client]:
    forget_tokens()
    spec = parse_spec(SPEC, environ={})
    context, projects = prepare(spec, store)
    with TestClient(create_app(context)) as client:
        yield Client(client, store, {p.name: p for p in projects})


def metric(name: str = "LCP", value: float = 1200.0, **extra: object) -> dict:
    return {"name": name, "value": value, "id": f"v4-{random.random()}", **extra}


class TestEndpoint:
    def test_single_metric_and_batch(self, api: Client) -> None:
        """One metric, a list and {metrics, page, release} are all stored; the summary
        groups them by page and release."""
        single = metric("LCP", 1000, page="/", release="web@1")
        assert api.beacon(single).json() == {"accepted": 1}
        batch = [metric("LCP", 3000, url="https://shop.example/?q=secret", release="web@1")]
        assert api.beacon(batch).json() == {"accepted": 1}
        shared = {"page": "/cart", "release": "web@2", "metrics": [metric("CLS", 0.12)]}
        assert api.beacon(shared).json() == {"accepted": 1}
        items = {(i["page"], i["release"]): i["metrics"] for i in api.summary()["items"]}
        assert items[("/", "web@1")]["lcp"] == {"p75": 2500.0, "count": 2}
        assert items[("/cart", "web@2")]["cls"] == {"p75": 0.12, "count": 1}

    def test_project_by_name_and_header_auth(self, api: Client) -> None:
        """The path may name the project; the key may come in X-Sentry-Auth."""
        info = api.projects["web"]
        response = api.client.post(
            "/api/v1/vitals/web",
            content=json.dumps(metric()),
            headers={"X-Sentry-Auth": f"Sentry sentry_key={info.public_key}, sentry_version=7"},
        )
        assert response.status_code == 200

    def test_auth_failures(self, api: Client) -> None:
        """No key is 401; a key of another project, or an unknown one, is 403."""
        info = api.projects["web"]
        response = api.client.post(f"/api/v1/vitals/{info.id}", content=json.dumps(metric()))
        assert response.status_code == 401
        other = api.projects["locked"].public_key
        assert api.beacon(metric(), key=other).status_code == 403
        assert api.beacon(metric(), key="0" * 32).status_code == 403
        assert api.beacon(metric(), ref="nope").status_code == 403

    @pytest.mark.parametrize(
        ("body", "status", "words"),
        [
            (b"not json", 400, "JSON"),
            ({"name": "LCP"}, 400, "metric 0: value must be a number"),
            ({"name": "XYZ", "value": 1}, 400, "name must be one of"),
            ({"name": "LCP", "value": -1}, 400, "between 0"),
            ({"name": "LCP", "value": True}, 400, "value must be a number"),
            ([metric(), 5], 400, "metric 1: a metric is a JSON object"),
            ({"name": "LCP", "value": 1, "page": 7}, 400, "page must be a string"),
            ([metric() for _ in range(201)], 413, "at most 200"),
            (b"\x00" * 70_000, 413, "max_body_size"),
            ("plain", 400, "metric object"),
        ],
    )
    def test_bad_bodies(self, api: Client, body: object, status: int, words: str) -> None:
        """Bad input is a 4xx that says what is wrong, and stores nothing."""
        response = api.beacon(body)
        assert response.status_code == status, response.text
        assert words in response.json()["detail"]
        assert api.summary()["items"] == []

    def test_same_id_replaces_value(self, api: Client) -> None:
        """web-vitals reports CLS again as it grows: the page load counts once, last value."""
        api.beacon({"name": "CLS", "value": 0.05, "id": "v4-1", "page": "/"})
        api.beacon({"name": "CLS", "value": 0.3, "id": "v4-1", "page": "/"})
        assert api.summary()["items"][0]["metrics"]["cls"] == {"p75": 0.3, "count": 1}

    def test_preflight_and_allowed_origins(self, api: Client) -> None:
        """Preflight answers with the origin when allowed; another origin is 403, before auth."""
        info = api.projects["locked"]
        ok = api.client.options(
            f"/api/v1/vitals/{info.id}",
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        )
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == "https://shop.example"
        assert "POST" in ok.headers["access-control-allow-methods"]
        bad = api.client.options(
            "/api/v1/vitals/locked", headers={"Origin": "https://evil.example"}
        )
        assert bad.status_code == 403
        posted = api.beacon(metric(), "locked", headers={"Origin": "https://evil.example"})
        assert posted.status_code == 403 and "allowed_origins" in posted.json()["detail"]
        good = api.beacon(metric(), "locked", headers={"Origin": "https://shop.example"})
        assert good.status_code == 200
        assert good.headers["access-control-allow-origin"] == "https://shop.example"
        anyone = api.beacon(metric(), headers={"Origin": "https://elsewhere.example"})
        assert anyone.headers["access-control-allow-origin"] == "https://elsewhere.example"

    def test_rate_limit(self, api: Client) -> None:
        """Past vitals_rate_limit per minute: 429 with Retry-After."""
        assert api.beacon([metric() for _ in range(3)], "locked").status_code == 200
        limited = api.beacon(metric(), "locked")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1

    def test_summary_parameters(self, api: Client) -> None:
        """by, release, page and window filter; a bad window or NUL is 400."""
        api.beacon([metric("LCP", 100, page="/a", release="r1"), metric("LCP", 200, page="/b")])
        assert len(api.summary("?by=none")["items"]) == 1
        assert api.summary("?release=r1")["items"][0]["page"] == "/a"
        assert api.summary("?page=/b")["items"][0]["metrics"]["lcp"]["p75"] == 200
        headers = {"Authorization": f"Bearer {api.token}"}
        assert api.client.get("/api/v1/vitals?window=x", headers=headers).status_code == 400
        assert api.client.get("/api/v1/vitals?page=%00", headers=headers).status_code == 400


class TestParsing:
    def test_page_keeps_only_the_path(self) -> None:
        """A URL keeps its path: no credentials, query or fragment."""
        assert page_of("https://u:pw@shop.example/cart?token=1#x") == "/cart"
        assert page_of("/search?q=me") == "/search"
        assert page_of("https://shop.example") == "/"

    def test_long_fields_are_cut(self) -> None:
        """Over-long strings are cut to their column, never refused or overflowing."""
        [beacon] = parse_vitals(
            json.dumps(
                {"name": "INP", "value": 80, "id": "x" * 500, "page": "/" + "p" * 900}
            ).encode()
        )
        assert len(beacon.metric_id) == 100 and len(beacon.page) == 300

    def test_errors_are_rejections(self) -> None:
        """Parsing raises Rejected (400) or TooLarge (413), never anything else."""
        with pytest.raises(Rejected):
            parse_vitals(b'{"name": "LCP", "value": "fast"}')
        with pytest.raises(TooLarge):
            parse_vitals(json.dumps([metric()] * 201).encode())

    def test_percentile(self) -> None:
        """p75 interpolates between closest ranks; no values is None."""
        assert percentile([1, 2, 3, 4, 5], 0.75) == 4
        assert percentile([10, 20], 0.75) == 17.5
        assert percentile([], 0.75) is None


class TestStore:
    def test_summary_and_context_on_both_stores(self, store: Store) -> None:
        """Rows land on SQLite and PostgreSQL; p75 per metric equals the raw values' p75."""
        project = ensure_project(store, "web")
        now = utcnow()
        values = [random.uniform(500, 4000) for _ in range(300)]
        beacons = [
            Beacon("LCP", v, f"id-{i}", page="/", release="r1") for i, v in enumerate(values)
        ]
        store_vitals(store, project.id, beacons, now)
        [group] = summarize(store, since=now - timedelta(minutes=1))
        assert group.metrics()["lcp"]["p75"] == pytest.approx(percentile(values, 0.75), rel=1e-6)
        context = vitals_context(store, since=now - timedelta(minutes=1), releases=["r1"])
        assert context["vitals"]["lcp"]["count"] == 300
        assert vitals_context(store, since=now, releases=["r2"]) == {"vitals": {}}

    def test_retention_prunes_old_vitals(self, store: Store) -> None:
        """Metrics older than events_keep go with the events; newer ones stay."""
        spec = parse_spec(
            '[service]\nname = "s"\n[server]\nevents_keep = "1d"\n[[server.projects]]\nname = "web"\n',
            environ={},
        )
        project = ensure_project(store, "web")
        now = utcnow()
        store_vitals(store, project.id, [Beacon("LCP", 1, "old")], now - timedelta(days=2))
        store_vitals(store, project.id, [Beacon("LCP", 2, "new")], now)
        pruned = prune_events(spec, store, batch=1)
        assert pruned.vitals == 1
        [group] = summarize(store, since=now - timedelta(days=3))
        assert group.metrics()["lcp"]["count"] == 1


class TestSpec:
    def test_bad_origin_names_the_line(self) -> None:
        """An origin with a path is refused with file:line."""
        text = SPEC.replace('"https://shop.example"', '"https://shop.example/app"')
        with pytest.raises(SpecError) as caught:
            parse_spec(text, source="tower.toml", environ={})
        assert "tower.toml:" in str(caught.value) and "scheme://host" in str(caught.value)


MONITOR_SPEC = """
[service]
name = "shop"

[[server.projects]]
name = "web"

[[monitors]]
name = "vitals"
type = "vitals"
project = "web"
window = "1h"
min_samples = 10
conditions = ["vitals.lcp.p75 <= 2500", "vitals.cls.p75 <= 0.1"]
"""


class TestMonitor:
    def _check(self, store: Store, spec_text: str = MONITOR_SPEC) -> CheckOutcome:
        spec = parse_spec(spec_text, environ={})
        env = ProbeEnv(vitals=lambda monitor: for_monitor(store, monitor, utcnow()))
        return asyncio.run(check(spec.monitors[0], env))

    def test_slow_pages_make_the_monitor_critical(self, store: Store) -> None:
        """p75 LCP over the budget fails the condition, naming what it observed; CLS with
        fewer than min_samples is not judged."""
        project = ensure_project(store, "web")
        beacons = [Beacon("LCP", 3000 + n, f"l{n}", page="/") for n in range(12)]
        store_vitals(store, project.id, [*beacons, Beacon("CLS", 0.9, "c1")], utcnow())
        outcome = self._check(store)
        assert outcome.level == "critical"
        assert [r.condition for r in outcome.results] == ["vitals.lcp.p75 <= 2500"]
        assert "vitals.lcp.p75 <= 2500: observed 3008.25" in outcome.message
        assert outcome.context["samples"] == 13

    def test_fast_pages_pass_and_no_samples_is_up(self, store: Store) -> None:
        """Fast pages pass; a window with no beacons judges nothing and stays up."""
        assert self._check(store).level == "ok"
        project = ensure_project(store, "web")
        store_vitals(store, project.id, [Beacon("LCP", 900, f"l{n}") for n in range(10)], utcnow())
        outcome = self._check(store)
        assert outcome.level == "ok" and len(outcome.results) == 1

    def test_without_the_store_the_check_says_so(self) -> None:
        """A vitals monitor run without a store is an error that says why."""
        spec = parse_spec(MONITOR_SPEC, environ={})
        outcome = asyncio.run(check(spec.monitors[0], ProbeEnv()))
        assert "vitals monitors need the store" in outcome.error
