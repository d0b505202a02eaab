"""Login under attack: throttling per account and per client, server-issued login
nonces, and API token lookups that stay bounded and see revocations at once."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from controltower.dashboard.app import Dashboard
from controltower.dashboard.auth import FREE_FAILURES, Accounts, lock_seconds
from controltower.server import ServerContext, create_app, create_token
from controltower.server.api.common import forget_tokens
from controltower.server.factory import prepare
from controltower.server.tokens import TokenCache, revoke_token
from controltower.spec import parse_spec
from controltower.store import Store
from controltower.store.models.dashboard import LoginFailure
from controltower.testing import FakeClock

PASSWORD = "correct horse battery"


class Login:
    """A browser at one address, logging in through the form."""

    def __init__(self, app: Starlette, address: str) -> None:
        self.client = TestClient(app, base_url="http://tower.test", client=(address, 5000))
        self.nonce = ""

    def form(self) -> str:
        page = self.client.get("/login")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found
        return found.group(1)

    def attempt(self, name: str, password: str) -> object:
        """One POST of the form, with the nonce the last page carried."""
        nonce = self.nonce or self.form()
        response = self.client.post(
            "/login",
            data={"csrf": nonce, "name": name, "password": password, "next": "/"},
            follow_redirects=False,
        )
        found = re.search(r'name="csrf" value="([^"]+)"', response.text)
        self.nonce = found.group(1) if found else ""
        return response


@pytest.fixture
def dashboard(store: Store) -> Iterator[tuple[Starlette, FakeClock]]:
    yield from _dashboard(store)


def _dashboard(store: Store) -> Iterator[tuple[Starlette, FakeClock]]:
    clock = FakeClock()
    Accounts(store, clock=clock).add_user("ana", PASSWORD)
    Accounts(store, clock=clock).add_user("ben", PASSWORD)
    yield Starlette(routes=Dashboard(store, clock=clock).routes()), clock


class TestLockout:
    def test_thousand_wrong_logins_from_one_client(self, tmp_path: Path) -> None:
        """1,000 wrong passwords, one every 250 ms: the first four are 401, the fifth
        locks (429 with Retry-After), each later failure doubles the lock, and only an
        attempt made after a lock ended reaches the password check (SQLite: the
        PostgreSQL variants below share every code path)."""
        store = Store.open(f"sqlite:///{tmp_path / 'tower.db'}")
        app, clock = next(_dashboard(store))
        browser = Login(app, "203.0.113.9")
        statuses: list[int] = []
        for _ in range(1000):
            statuses.append(browser.attempt("ana", "wrong password").status_code)
            clock.advance(0.25)
        assert statuses[: FREE_FAILURES - 1] == [401] * (FREE_FAILURES - 1)
        assert set(statuses[FREE_FAILURES - 1 :]) == {429}
        expected, until = 0, 0.0
        for attempt in range(1000):
            if attempt * 0.25 >= until:
                expected += 1
                until = attempt * 0.25 + lock_seconds(expected)
        with store.session() as session:
            counted = {row.key: row.failures for row in session.scalars(select(LoginFailure))}
        assert counted == {"account:ana": expected, "client:203.0.113.9": expected}
        assert expected == 12, "locks of 1+2+...+64 s end within the 250 s; 128 s do not"
        response = browser.attempt("ana", PASSWORD)
        assert response.status_code == 429, "the right password waits out the lock too"
        retry = int(response.headers["retry-after"])
        assert 1 <= retry <= lock_seconds(expected)
        assert "locked for" in response.text and f"{retry} s" in response.text
        clock.advance(retry)
        response = browser.attempt("ana", PASSWORD)
        assert response.status_code == 303, "after the lock the right password works"
        assert browser.attempt("ana", "wrong again").status_code == 401, "counts were cleared"

    def test_lock_doubles_and_is_capped(self) -> None:
        """The lock after the fifth failure is 1 s, doubling with each, at most 15 minutes."""
        assert [lock_seconds(n) for n in range(1, 9)] == [0, 0, 0, 0, 1, 2, 4, 8]
        assert lock_seconds(10_000) == 900

    def test_account_lock_holds_from_another_client(
        self, dashboard: tuple[Starlette, FakeClock]
    ) -> None:
        """Five failures on one account lock that account from every address, and the
        guessing client from every account; other accounts and clients go on."""
        app, _ = dashboard
        attacker = Login(app, "198.51.100.1")
        for _ in range(FREE_FAILURES):
            attacker.attempt("ana", "guess")
        assert Login(app, "192.0.2.7").attempt("ana", PASSWORD).status_code == 429
        assert attacker.attempt("ben", PASSWORD).status_code == 429
        assert Login(app, "192.0.2.8").attempt("ben", PASSWORD).status_code == 303


class TestLoginForm:
    def test_forged_pair_is_refused(self, dashboard: tuple[Starlette, FakeClock]) -> None:
        """A cookie and form value the server never issued are refused, even if equal."""
        app, _ = dashboard
        client = TestClient(app, base_url="http://tower.test")
        client.cookies.set("tower_login_csrf", "forged-value")
        response = client.post(
            "/login",
            data={"csrf": "forged-value", "name": "ana", "password": PASSWORD},
            follow_redirects=False,
        )
        assert response.status_code == 403

    def test_nonce_is_single_use(self, dashboard: tuple[Starlette, FakeClock]) -> None:
        """A login form's nonce is spent by its first POST."""
        app, _ = dashboard
        browser = Login(app, "192.0.2.1")
        nonce = browser.form()
        data = {"csrf": nonce, "name": "ana", "password": "wrong", "next": "/"}
        assert browser.client.post("/login", data=data).status_code == 401
        browser.client.cookies.set("tower_login_csrf", nonce)
        assert browser.client.post("/login", data=data).status_code == 403

    def test_nonce_expires(self, dashboard: tuple[Starlette, FakeClock]) -> None:
        """A form left open more than an hour must be reloaded."""
        app, clock = dashboard
        browser = Login(app, "192.0.2.1")
        nonce = browser.form()
        clock.advance(3601)
        data = {"csrf": nonce, "name": "ana", "password": PASSWORD, "next": "/"}
        assert browser.client.post("/login", data=data).status_code == 403

    def test_cross_origin_login_is_refused(self, dashboard: tuple[Starlette, FakeClock]) -> None:
        """A login POST from another origin is refused (login CSRF)."""
        app, _ = dashboard
        browser = Login(app, "192.0.2.1")
        nonce = browser.form()
        response = browser.client.post(
            "/login",
            data={"csrf": nonce, "name": "ana", "password": PASSWORD, "next": "/"},
            headers={"origin": "https://evil.example"},
            follow_redirects=False,
        )
        assert response.status_code == 403


class TestTokenCache:
    def test_bounded_lru(self) -> None:
        """The cache never holds more than its bound; the least recently used goes first."""
        cache = TokenCache(max_entries=100)
        for n in range(1000):
            cache.put(f"bogus{n}", 0, None)
        assert len(cache) == 100
        assert cache.peek("bogus0") is False and cache.peek("bogus999") is None

    def test_negative_entries_are_short_lived(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unknown token is remembered for the negative TTL only."""
        now = [1000.0]
        monkeypatch.setattr(time, "monotonic", lambda: now[0])
        cache = TokenCache(negative_ttl=2.0)
        cache.put("bogus", 0, None)
        assert cache.get("bogus", None) == (True, None)
        now[0] += 2.5
        assert cache.get("bogus", None) == (False, None)
        assert len(cache) == 0

    def test_revocation_from_the_cli_is_effective_at_once(self, store: Store) -> None:
        """A token revoked in the store by another process (the CLI) is refused on the
        very next request, although this server had it cached as valid."""
        forget_tokens()
        spec = parse_spec('[service]\nname = "shop"\n', environ={})
        context, _ = prepare(spec, store, monitors=False, notify=False)
        assert isinstance(context, ServerContext)
        token, info = create_token(store, "ci", ["read"])
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(context)) as client:
            assert client.get("/api/v1/services", headers=headers).status_code == 200
            assert client.get("/api/v1/services", headers=headers).status_code == 200
            assert revoke_token(store, info.id)
            assert client.get("/api/v1/services", headers=headers).status_code == 401
