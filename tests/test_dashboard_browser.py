"""The dashboard in a real browser: Debian's chromium driven by Playwright.

A person logs in, sees the overview, acknowledges an incident by clicking its
button, opens an error issue and reads its stack trace. Screenshots of the main
pages go to test-artifacts/dashboard/. The pages run no script, so the browser
also proves that the stylesheet loads under the pages' Content-Security-Policy.

Chromium is ``$TOWER_CHROMIUM`` (default /usr/bin/chromium); Playwright never
downloads a browser. Without one these tests skip, or fail under
``TOWER_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controltower.server import RunningServer, start_server
from controltower.store import Store
from tests.browser_support import chromium
from tests.serve_support import ARTIFACTS, Seeded, seed, seed_spec

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

SHOTS = ARTIFACTS / "dashboard"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium, launched once for the module."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Seeded]]:
    """A running server over a seeded store, with a user who may log in."""
    root = tmp_path_factory.mktemp("dashboard")
    with Store.open(f"sqlite:///{root / 'tower.db'}") as store:
        facts = seed(store)
        with start_server(seed_spec(), store, monitors=False, notify=False) as server:
            server.add_user("ana", PASSWORD)
            yield server, facts


@pytest.fixture
def page(dashboard: tuple[RunningServer, Seeded], browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies), logged in, that records console errors."""
    server, _ = dashboard
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.console_errors = errors
    page.goto("/")
    assert page.url.endswith("/login?next=/")
    page.fill("#name", "ana")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))
    yield page
    context.close()


def shoot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path


def styled(page: Any) -> bool:
    """The stylesheet applied: the header bar has its dark background."""
    colour = page.eval_on_selector("header.top", "e => getComputedStyle(e).backgroundColor")
    return bool(colour == "rgb(18, 24, 38)")


class TestDashboardInChromium:
    def test_login_and_overview(self, page: Any, dashboard: tuple[RunningServer, Seeded]) -> None:
        """After logging in the overview shows the service down, its open incident,
        its last deploy and readiness, styled, with no console error."""
        _, facts = dashboard
        row = page.locator("tr", has=page.locator('a[href="/services/shop"]'))
        assert row.locator(".pill.down").inner_text() == "down"
        assert f"#{facts.incident_id} api is failing" in row.inner_text()
        assert "v1.5.0" in row.inner_text()
        assert page.locator("svg.spark").first.is_visible()
        assert styled(page)
        shoot(page, "overview")
        assert page.console_errors == []

    def test_acknowledge_an_incident_by_clicking(
        self, page: Any, dashboard: tuple[RunningServer, Seeded]
    ) -> None:
        """Clicking Acknowledge moves the incident to acknowledged, by this user."""
        _, facts = dashboard
        page.click("nav >> text=Incidents")
        status = page.locator(f'[data-testid="status-{facts.incident_id}"]')
        assert status.inner_text() == "firing"
        row = page.locator(f"#incident-{facts.incident_id}")
        row.locator("button", has_text="Acknowledge").click()
        page.wait_for_load_state()
        assert status.inner_text() == "acknowledged"
        assert "by ana" in row.inner_text()
        assert row.locator("button", has_text="Acknowledge").count() == 0
        row.locator("summary", has_text="Timeline").click()
        assert "acknowledged by ana" in row.locator(".timeline").inner_text()
        shoot(page, "incidents")
        assert page.console_errors == []

    def test_open_a_stack_trace(self, page: Any, dashboard: tuple[RunningServer, Seeded]) -> None:
        """From the error list a click opens the issue, whose stack trace shows the
        failing line with its source context."""
        page.click("nav >> text=Errors")
        assert page.locator("svg.spark").count() == 2
        shoot(page, "errors")
        page.click("text=ZeroDivisionError: division by zero")
        stack = page.locator('[data-testid="stack"]')
        stack.wait_for()
        text = stack.inner_text()
        assert "ZeroDivisionError: division by zero" in text
        assert "app/views.py:42 in checkout" in text
        assert "total = cart.total / cart.count" in text
        line = stack.locator(".frame .line").first
        assert line.is_visible()
        shoot(page, "error-issue")
        assert page.console_errors == []

    @pytest.mark.parametrize(
        ("name", "path", "visible"),
        [
            ("service", "/services/shop", "svg.uptime"),
            ("deploys", "/deploys", "svg.bars"),
            ("readiness", "/readiness", "svg.chart"),
        ],
    )
    def test_main_pages(self, page: Any, name: str, path: str, visible: str) -> None:
        """The service, deploys and readiness pages render their charts, styled."""
        page.goto(path)
        assert page.locator(visible).first.is_visible()
        box = page.locator(visible).first.bounding_box()
        assert box is not None and box["width"] > 200
        assert styled(page)
        shoot(page, name)
        assert page.console_errors == []

    def test_release_step_log(self, page: Any, dashboard: tuple[RunningServer, Seeded]) -> None:
        """A rolled-back release shows why, step by step."""
        _, facts = dashboard
        page.click("nav >> text=Deploys")
        page.click(f"text={facts.bad_release}")
        assert "error rate 23.5% > 1%: rolling back" in page.locator("table").inner_text()
        shoot(page, "release")

    def test_public_status_page(
        self, browser: Any, dashboard: tuple[RunningServer, Seeded]
    ) -> None:
        """The status page needs no login and shows each component's 90 days."""
        server, _ = dashboard
        context = browser.new_context(base_url=server.url, viewport={"width": 1000, "height": 800})
        page = context.new_page()
        page.goto("/status")
        assert page.locator(".banner").inner_text() == "Major outage"
        assert page.locator("svg.uptime").count() == 2
        assert page.locator("svg.uptime").first.locator("rect").count() == 90
        shoot(page, "status")
        badge = page.goto("/badge/shop/status.svg")
        assert badge is not None and badge.headers["content-type"] == "image/svg+xml"
        context.close()
