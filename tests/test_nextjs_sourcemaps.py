"""Readable Next.js errors: the real sentry-cli uploads the fixture app's source maps to
`tower serve`, and errors from a route handler (Node SDK) and from a client component
clicked in Chromium (browser SDK) arrive with the original .ts(x) file, line and function.
Without maps the same errors still group: one issue per error, whatever the build."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controltower.ingest import issues
from controltower.server import RunningServer, create_token, start_server
from controltower.spec import parse_spec
from controltower.store import Store
from tests.nextjs_support import NextBuild, NextServer, build_or_fail, slow_build
from tests.test_dashboard_browser import browser

__all__ = ["browser"]

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("nextjs-errors"), slow_build]

SPEC = """
[service]
name = "shop"

[server]
flush_interval = "50ms"

[[server.projects]]
name = "web"
rate_limit = 100000
"""


class Tower:
    def __init__(self, server: RunningServer, store: Store, token: str) -> None:
        self.server = server
        self.store = store
        self.token = token
        self.dsn = server.dsn("web")

    def upload(self, build: NextBuild, release: str) -> str:
        """`sentry-cli releases new` + `sourcemaps upload` + `releases finalize`, as in CI."""
        env = {
            **os.environ,
            "SENTRY_URL": self.server.url,
            "SENTRY_AUTH_TOKEN": self.token,
            "SENTRY_ORG": "tower",
            "SENTRY_PROJECT": "web",
        }
        cli = str(build.bin("sentry-cli"))
        output = ""
        for args in (
            ["releases", "new", release],
            ["sourcemaps", "upload", "--release", release, "--url-prefix", "~/_next", ".next"],
            ["releases", "finalize", release],
        ):
            done = subprocess.run(
                [cli, *args], cwd=build.folder, env=env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, f"sentry-cli {args[:2]}: {done.stdout}{done.stderr}"
            output += done.stdout
        return output

    def issues(self, expected: int, deadline: float = 60.0) -> list[dict[str, Any]]:
        """The project's issues once there are ``expected`` of them (events are written
        in the background)."""
        end = time.monotonic() + deadline
        found: list[dict[str, Any]] = []
        while time.monotonic() < end:
            found = issues.list_issues(self.store)
            if len(found) >= expected:
                time.sleep(0.3)
                return issues.list_issues(self.store)
            time.sleep(0.2)
        raise AssertionError(f"{len(found)} issues after {deadline}s, wanted {expected}: {found}")

    def top_frame(self, issue: dict[str, Any]) -> dict[str, Any]:
        [event, *_] = issues.list_events(self.store, issue["id"])
        frames: list[dict[str, Any]] = event["exception"][-1]["frames"]
        return frames[-1]


@pytest.fixture
def tower(tmp_path: Path) -> Iterator[Tower]:
    spec = parse_spec(SPEC, source="tower.toml", environ={})
    with Store.open(f"sqlite:///{tmp_path / 'tower.db'}") as store:
        token, _ = create_token(store, "ci", ["write"])
        with start_server(spec, store, monitors=False, notify=False) as server:
            yield Tower(server, store, token)


def _click_checkout(browser: Any, url: str) -> list[str]:
    """Load the home page, wait for hydration and the SDK, click the failing button."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(url)
        page.wait_for_selector("html[data-sentry=ready]")
        page.click("#checkout")
        page.wait_for_selector("#checkout[data-hydrated=clicked]")
        page.wait_for_timeout(1500)  # the SDK sends the event after the handler threw
    finally:
        context.close()
    return errors


def _get(server: NextServer, path: str) -> None:
    response = httpx.get(server.url + path, timeout=60)
    assert response.status_code == 500, response.text
    assert "captured" in response.json()


class TestSymbolication:
    def test_route_handler_and_client_errors_arrive_with_original_frames(
        self,
        tower: Tower,
        next_app: NextBuild,
        next_server: Callable[..., NextServer],
        browser: Any,
    ) -> None:
        """After sentry-cli uploaded the maps, the route handler's error reads
        app/api/boom/route.ts:6 in chargeCard, the client error app/checkout-button.tsx:7 in
        applyDiscount, each with its source line, and the minified frame is kept beside."""
        uploaded = tower.upload(next_app, "shop@1")
        assert "route.js.map" in uploaded
        app = next_server(next_app, SENTRY_DSN=tower.dsn, SENTRY_RELEASE="shop@1")
        _get(app, "/api/boom?kind=charge")
        [server_issue] = tower.issues(1)
        frame = tower.top_frame(server_issue)
        assert frame["filename"] == "app/api/boom/route.ts"
        assert frame["lineno"] == 6
        assert frame["function"] == "chargeCard"
        assert "card declined" in frame["context_line"]
        assert frame["in_app"] is True
        assert frame["minified"]["filename"].endswith("/_next/server/app/api/boom/route.js")

        _click_checkout(browser, app.url)
        client = [i for i in tower.issues(2) if "discount" in i["title"]]
        assert client, "the client error did not arrive"
        frame = tower.top_frame(client[0])
        assert frame["filename"] == "app/checkout-button.tsx"
        assert frame["lineno"] == 7
        assert frame["function"] == "applyDiscount"
        assert "unknown discount code" in frame["context_line"]
        assert "/_next/static/chunks/app/page-" in frame["minified"]["filename"], frame


class TestGroupingWithoutMaps:
    def test_anonymous_handlers_make_three_issues_and_builds_share_one(
        self,
        tower: Tower,
        next_app: NextBuild,
        next_server: Callable[..., NextServer],
        browser: Any,
    ) -> None:
        """With no maps uploaded: three errors of one type thrown by three anonymous handlers
        of one route file are three issues (sent twice, still three); the client error
        clicked on two builds whose chunk hashes differ is one issue."""
        first = next_server(next_app, SENTRY_DSN=tower.dsn)
        for _ in range(2):
            for kind in "abc":
                _get(first, f"/api/boom?kind={kind}")
        handler_issues = tower.issues(3)
        assert len(handler_issues) == 3
        assert {issue["count"] for issue in handler_issues} == {2}

        other = build_or_fail(env={"FIXTURE_BUILD": "B"})
        second = next_server(other, SENTRY_DSN=tower.dsn)
        assert httpx.get(second.url + "/api/build", timeout=30).json() == {"build": "B"}
        chunks = {
            build.folder: {
                p.name for p in (build.folder / ".next/static/chunks/app").glob("page-*.js")
            }
            for build in (next_app, other)
        }
        assert chunks[next_app.folder] != chunks[other.folder], "the builds share chunk hashes"
        _click_checkout(browser, first.url)
        _click_checkout(browser, second.url)
        found = tower.issues(4)
        client = [issue for issue in found if "discount" in issue["title"]]
        assert len(found) == 4 and len(client) == 1, found
        assert client[0]["count"] == 2
