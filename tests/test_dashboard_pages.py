"""The dashboard and status page served by ``tower serve``, over HTTP in process.

Login with a session cookie and per-session CSRF tokens; every page renders the
seeded store's facts; POSTs without the token or from another origin change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from controltower.dashboard.auth import Accounts
from controltower.server import create_app
from controltower.server.factory import prepare
from controltower.store import Store
from controltower.store.models.monitor import Incident
from tests.serve_support import Seeded, fresh_database, seed, seed_spec

PASSWORD = "correct horse battery"


class Browser:
    """A TestClient that logs in through the form like a person would."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def csrf(self, html: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        assert found, "the page has no CSRF field"
        return found.group(1)

    def login(self, name: str = "ana", password: str = PASSWORD, next_: str = "/") -> object:
        form = self.client.get("/login")
        return self.client.post(
            "/login",
            data={"csrf": self.csrf(form.text), "name": name, "password": password, "next": next_},
            follow_redirects=False,
        )


def _site(store: Store) -> Iterator[tuple[Browser, Seeded, Store]]:
    facts = seed(store)
    Accounts(store).add_user("ana", PASSWORD)
    context, _ = prepare(seed_spec(), store, monitors=False, notify=False)
    with TestClient(create_app(context), base_url="http://tower.test") as client:
        yield Browser(client), facts, store


@pytest.fixture
def site(store: Store) -> Iterator[tuple[Browser, Seeded, Store]]:
    """The dashboard over a seeded store, on SQLite and on PostgreSQL."""
    yield from _site(store)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def shared_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Browser, Seeded, Store]]:
    """One seeded dashboard per backend, logged in, for the tests that only read."""
    with (
        fresh_database(request.param, tmp_path_factory.mktemp("pages")) as url,
        Store.open(url) as store,
    ):
        for site in _site(store):
            site[0].login()
            yield site


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[tuple[Browser, Seeded, Store]]:
    """The same on SQLite only, for what does not touch the read model."""
    with Store.open(f"sqlite:///{tmp_path / 'tower.db'}") as store:
        yield from _site(store)


class TestLogin:
    def test_pages_need_a_login(self, sqlite_site: tuple[Browser, Seeded, Store]) -> None:
        """Every dashboard page redirects to the login form, remembering where it was going."""
        browser, _, _ = sqlite_site
        for path in ("/", "/incidents", "/deploys", "/errors", "/readiness", "/services/shop"):
            response = browser.client.get(path, follow_redirects=False)
            assert response.status_code == 303
            assert response.headers["location"] == f"/login?next={path}"

    def test_login_sets_a_session_and_goes_on(
        self, sqlite_site: tuple[Browser, Seeded, Store]
    ) -> None:
        """Right credentials: an HttpOnly SameSite session cookie and a redirect to next."""
        browser, _, _ = sqlite_site
        response = browser.login(next_="/errors")
        assert response.status_code == 303 and response.headers["location"] == "/errors"
        cookie = response.headers["set-cookie"]
        assert "tower_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert browser.client.get("/errors").status_code == 200

    def test_wrong_password_and_foreign_next(
        self, sqlite_site: tuple[Browser, Seeded, Store]
    ) -> None:
        """A wrong password is 401 with no session; next pointing off-site is ignored."""
        browser, _, _ = sqlite_site
        wrong = browser.login(password="not the password")
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        assert "tower_session" not in browser.client.cookies
        response = browser.login(next_="//evil.example/")
        assert response.headers["location"] == "/"

    def test_login_form_needs_its_token(self, sqlite_site: tuple[Browser, Seeded, Store]) -> None:
        """A login POST without the form's CSRF token is refused."""
        browser, _, _ = sqlite_site
        response = browser.client.post("/login", data={"name": "ana", "password": PASSWORD})
        assert response.status_code == 403

    def test_logout_ends_the_session(self, sqlite_site: tuple[Browser, Seeded, Store]) -> None:
        """Logging out deletes the session server-side: the old cookie no longer works."""
        browser, _, _ = sqlite_site
        browser.login()
        cookie = browser.client.cookies["tower_session"]
        page = browser.client.get("/")
        browser.client.post("/logout", data={"csrf": browser.csrf(page.text)})
        browser.client.cookies.set("tower_session", cookie)
        assert browser.client.get("/", follow_redirects=False).status_code == 303


class TestActions:
    def _status(self, store: Store, incident_id: int) -> str:
        with store.session() as session:
            incident = session.get(Incident, incident_id)
            assert incident is not None
            return incident.status

    def test_acknowledge_then_resolve(self, site: tuple[Browser, Seeded, Store]) -> None:
        """The buttons acknowledge (recording who) and then resolve the incident."""
        browser, facts, store = site
        browser.login()
        page = browser.client.get("/incidents")
        assert f'action="/incidents/{facts.incident_id}/ack"' in page.text
        token = browser.csrf(page.text)
        browser.client.post(f"/incidents/{facts.incident_id}/ack", data={"csrf": token})
        assert self._status(store, facts.incident_id) == "acknowledged"
        page = browser.client.get("/incidents")
        assert "by ana" in page.text and "/ack" not in page.text
        browser.client.post(f"/incidents/{facts.incident_id}/resolve", data={"csrf": token})
        assert self._status(store, facts.incident_id) == "resolved"

    def test_post_without_csrf_or_from_elsewhere_is_refused(
        self, site: tuple[Browser, Seeded, Store]
    ) -> None:
        """No token, a wrong token, or another Origin: 403 and the incident stays as it was."""
        browser, facts, store = site
        browser.login()
        token = browser.csrf(browser.client.get("/incidents").text)
        path = f"/incidents/{facts.incident_id}/ack"
        assert browser.client.post(path, data={}).status_code == 403
        assert browser.client.post(path, data={"csrf": "forged"}).status_code == 403
        foreign = browser.client.post(
            path, data={"csrf": token}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert self._status(store, facts.incident_id) == "firing"

    def test_resolve_an_error_issue(self, site: tuple[Browser, Seeded, Store]) -> None:
        """ "Mark resolved" on an issue page resolves it."""
        browser, facts, _ = site
        browser.login()
        issue = facts.issues["ZeroDivisionError"]
        page = browser.client.get(f"/errors/{issue}")
        browser.client.post(f"/errors/{issue}/resolve", data={"csrf": browser.csrf(page.text)})
        assert 'class="pill resolved"' in browser.client.get(f"/errors/{issue}").text


class TestPages:
    def test_overview(self, shared_site: tuple[Browser, Seeded, Store]) -> None:
        """Status, uptime, the open incident, the last deploy and the readiness score per service."""
        browser, facts, _ = shared_site
        html = browser.client.get("/").text
        row = html[html.index('href="/services/shop"') :]
        assert 'class="pill down"' in row
        assert re.search(r"<td>9\d\.\d\d%</td>", row), "24h uptime"
        assert f"#{facts.incident_id} api is failing" in row
        assert "v1.5.0" in row and ">rolled back</span>" in row
        assert re.search(r"<td>\d+%</td>", row), "readiness score"
        assert '<svg class="spark"' in row

    def test_service_page(self, shared_site: tuple[Browser, Seeded, Store]) -> None:
        """A response-time chart and one uptime bar per day for 90 days, one red."""
        browser, _, _ = shared_site
        html = browser.client.get("/services/shop").text
        assert '<svg class="chart"' in html
        bars = re.findall(r'<rect [^>]*class="(bar-[a-z]+)"', html)
        assert len(bars) == 90
        assert "bar-down" in bars or "bar-degraded" in bars
        assert bars[-1] != "bar-none"
        assert browser.client.get("/services/nope").status_code == 404

    def test_deploys_and_step_log(self, shared_site: tuple[Browser, Seeded, Store]) -> None:
        """Deploys list with DORA figures (as the API computes them) and charts; a release
        shows its step log."""
        browser, facts, _ = shared_site
        html = browser.client.get("/deploys").text
        figures = re.findall(r'<div class="value">([^<]*)</div>', html)
        assert figures == ["0.2", "50%", "4m", "3h4m"], "the DORA figures of /api/v1/dora"
        assert html.count('<svg class="bars"') == 2
        release = browser.client.get(f"/deploys/{facts.bad_release}").text
        assert "error rate 23.5% &gt; 1%: rolling back" in release
        assert "v1.4.0 serves all traffic again" in release

    def test_errors_and_stack_trace(self, shared_site: tuple[Browser, Seeded, Store]) -> None:
        """Issues list with counts and sparklines; an issue shows its stack with source lines."""
        browser, facts, _ = shared_site
        html = browser.client.get("/errors").text
        assert "ZeroDivisionError: division by zero" in html and "<td>6</td>" in html
        assert html.count('<svg class="spark"') == 2
        issue = browser.client.get(f"/errors/{facts.issues['ZeroDivisionError']}").text
        assert "app/views.py:42 in checkout" in issue
        assert "total = cart.total / cart.count" in issue
        assert "v1.5.0" in issue and "production" in issue

    def test_web_vitals_on_errors_page(self, shared_site: tuple[Browser, Seeded, Store]) -> None:
        """The Errors page shows p75 web vitals per page and release of the last 24 hours."""
        browser, _, _ = shared_site
        html = browser.client.get("/errors").text
        assert "Web vitals, last 24 hours (p75)" in html
        assert "<td>/pricing</td>" in html.replace(' class="mono"', "")
        assert "<td>2125 ms</td>" in html and "<td>0.077</td>" in html

    def test_readiness_history(self, shared_site: tuple[Browser, Seeded, Store]) -> None:
        """The score chart, gate verdicts and failing findings of the latest run."""
        browser, _, _ = shared_site
        html = browser.client.get("/readiness").text
        assert '<svg class="chart"' in html and "no-go" in html
        assert "env.client_secret" in html

    def test_pages_carry_security_headers(self, shared_site: tuple[Browser, Seeded, Store]) -> None:
        """Pages forbid scripts, framing and sniffing; they load only their own stylesheet."""
        browser, _, _ = shared_site
        response = browser.client.get("/")
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "<script" not in response.text
        assert response.headers["x-content-type-options"] == "nosniff"
        assert browser.client.get("/static/tower.css").status_code == 200


class TestStatusPage:
    def test_public_components_and_incident(
        self, shared_site: tuple[Browser, Seeded, Store]
    ) -> None:
        """Without a login: overall state, each component with 90 days of bars, the incident."""
        browser, _, _ = shared_site
        anonymous = TestClient(browser.client.app, base_url="http://tower.test")
        response = anonymous.get("/status")
        assert response.status_code == 200
        html = response.text
        assert "Shop status" in html and "Major outage" in html
        assert "shop · api" in html and "shop · db" in html
        assert html.count('<svg class="uptime"') == 2
        assert "api is failing" in html

    def test_badges(self, shared_site: tuple[Browser, Seeded, Store]) -> None:
        """SVG badges for status and 30-day uptime, cacheable, for unknown services too."""
        browser, _, _ = shared_site
        status = browser.client.get("/badge/shop/status.svg")
        assert status.headers["content-type"] == "image/svg+xml"
        assert "shop: down" in status.text and "#d1372e" in status.text
        uptime = browser.client.get("/badge/shop/uptime.svg").text
        assert re.search(r"uptime 30d: 9\d\.\d\d%", uptime)
        assert "nope: unknown" in browser.client.get("/badge/nope/status.svg").text
        assert browser.client.get("/badge/shop/other.svg").status_code == 404
