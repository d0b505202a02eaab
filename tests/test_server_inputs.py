"""No 500 on any input: ids out of range, wrong methods, hostile ingestion bodies.

In process, on SQLite and PostgreSQL: a path id too large for any store is a
404 on the API and the dashboard alike (SQLite's 64-bit integers would
otherwise raise OverflowError); a method a route does not take is 405 with the
``Allow`` header; a CSP report with a lone surrogate or NUL is stored.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from controltower.server import create_app, create_token
from controltower.server.factory import prepare
from controltower.store import Store
from tests.serve_support import Seeded, seed, seed_spec
from tests.test_dashboard_pages import PASSWORD, Browser

HUGE = "9" * 30


@pytest.fixture
def served(store: Store) -> Iterator[tuple[TestClient, Seeded, str]]:
    from controltower.dashboard.auth import Accounts

    facts = seed(store)
    Accounts(store).add_user("ana", PASSWORD)
    token, _ = create_token(store, "inputs", ["read", "write", "ingest"])
    context, _ = prepare(seed_spec(), store, monitors=False, notify=False)
    with TestClient(create_app(context), base_url="http://tower.test") as client:
        yield client, facts, token


class TestHugeIds:
    @pytest.mark.parametrize(
        "method, path",
        [
            ("GET", "/api/v1/issues/{n}"),
            ("GET", "/api/v1/issues/{n}/events"),
            ("POST", "/api/v1/issues/{n}/resolve"),
            ("GET", "/api/v1/incidents/{n}"),
            ("GET", "/api/v1/monitors/{n}/results"),
            ("DELETE", "/api/v1/silences/{n}"),
            ("GET", "/api/v1/issues?before={n}"),
        ],
    )
    def test_api_answers_4xx(
        self, served: tuple[TestClient, Seeded, str], method: str, path: str
    ) -> None:
        """An id of 30 digits is a 4xx with the API's error body, never a 500."""
        client, _, token = served
        answer = client.request(
            method, path.format(n=HUGE), headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code in (400, 404), answer.text
        assert "error" in answer.json()

    def test_dashboard_answers_404(self, served: tuple[TestClient, Seeded, str]) -> None:
        """The dashboard's issue page with a 30-digit id is a 404 for a logged-in person."""
        client, _, _ = served
        Browser(client).login()
        assert client.get(f"/errors/{HUGE}").status_code == 404

    def test_ingestion_answers_403(self, served: tuple[TestClient, Seeded, str]) -> None:
        """A project id of 30 digits has no DSN key: 403."""
        client, facts, _ = served
        key = facts.project.public_key
        answer = client.post(f"/api/{HUGE}/store/?sentry_key={key}", content=b"{}")
        assert answer.status_code == 403


class TestMethods:
    @pytest.mark.parametrize(
        "method, path, allowed",
        [
            ("PUT", "/api/v1/issues", "GET"),
            ("GET", "/api/1/envelope/", "POST"),
            ("DELETE", "/healthz", "GET"),
        ],
    )
    def test_405_names_the_allowed_methods(
        self, served: tuple[TestClient, Seeded, str], method: str, path: str, allowed: str
    ) -> None:
        """A method a route does not take is 405 with Allow listing the ones it does."""
        client, _, _ = served
        answer = client.request(method, path)
        assert answer.status_code == 405
        assert allowed in answer.headers["allow"]
        assert answer.json()["error"]["code"] == "method_not_allowed"


class TestCspInput:
    @pytest.mark.parametrize("directive", [b"img-src\\u0000", b"img-src\\ud800", b"\\udfff"])
    def test_unstorable_text_is_stored(
        self, served: tuple[TestClient, Seeded, str], directive: bytes
    ) -> None:
        """A CSP report with NUL or a lone surrogate is 204 and stored, not a 500."""
        client, facts, token = served
        report = (
            b'{"csp-report": {"effective-directive": "' + directive + b'", "blocked-uri": "x"}}'
        )
        answer = client.post(
            f"/api/{facts.project.id}/security/?sentry_key={facts.project.public_key}",
            content=report,
            headers={"Content-Type": "application/csp-report"},
        )
        assert answer.status_code == 204, answer.text
        listed = client.get("/api/v1/csp", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200
