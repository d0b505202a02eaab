"""A browser session through tower's proxy during a canary sees one release only.

The example app runs as two releases under the local driver (its agent, its
proxy, real uvicorn processes); Debian's chromium, driven by Playwright, loads
the page before the canary starts. The weights then move as a canary's steps
move them (10%, 50%, 90%), and every page load and every ``fetch`` of that
session must come from the release it first loaded, while sessions that begin
during the canary land on both releases, each on one.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controltower.deploy.drivers.base import ReleaseInfo
from controltower.deploy.drivers.local import LocalDriver
from controltower.spec.deploy import LocalDriverSpec
from tests.browser_support import chromium
from tests.conftest import EXAMPLE_APP, free_port
from tests.deploy_support import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

APP = (
    "{python} -m uvicorn app:app --host 127.0.0.1 --port {port} --no-access-log --log-level warning"
)
FETCHES = """async (count) => {
  const seen = [];
  for (let i = 0; i < count; i++) {
    const answer = await fetch('/api/items', {cache: 'no-store'});
    seen.push(answer.headers.get('x-tower-release'));
  }
  return seen;
}"""


def version(page: Any) -> str:
    """The version the example app's page says it is (its first clause)."""
    text: str = page.locator("p").first.inner_text()
    return text.split(",")[0]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDriver]:
    """Releases r1 (version 1.0) and r2 (version 2.0) of the example app, one instance each."""
    root: Path = tmp_path_factory.mktemp("sticky")
    spec = LocalDriverSpec(
        command=APP,
        cwd=str(EXAMPLE_APP),
        proxy_port=free_port(),
        state_dir=str(root / "local"),
        env={"APP_VERSION": "{version}", "APP_DATABASE": str(root / "app.db")},
    )
    driver = LocalDriver(spec, root=root, service="shop", health_path="/api/health")
    driver.prepare()
    try:
        driver.start(ReleaseInfo(id="r1", version="1.0"), 1)
        driver.start(ReleaseInfo(id="r2", version="2.0"), 1)
        wait_until(
            lambda: sum(i.state == "running" for i in driver.instances()) == 2,
            deadline=90,
            what="both releases running",
        )
        yield driver
    finally:
        pids = [int(i.detail.get("pid") or 0) for i in driver.instances()]
        driver.agent.shutdown(wait=20)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        driver.close()


class TestStickyCanary:
    def test_a_session_keeps_its_release_for_the_whole_canary(
        self, shop: LocalDriver, browser: Any
    ) -> None:
        """The session that loaded 1.0 before the canary gets 1.0 for every page load and
        every fetch at each step of the canary."""
        shop.route({"r1": 1.0})
        context = browser.new_context(base_url=shop.public_url())
        try:
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto("/")
            assert version(page) == "version 1.0"
            pages: list[str] = []
            fetched: list[str] = []
            for weight in (0.1, 0.5, 0.9):
                shop.route({"r2": weight, "r1": round(1 - weight, 3)})
                for _ in range(3):
                    page.reload()
                    pages.append(version(page))
                fetched += page.evaluate(FETCHES, 10)
        finally:
            context.close()
        assert set(pages) == {"version 1.0"} and len(pages) == 9
        assert set(fetched) == {"r1"} and len(fetched) == 30

    def test_sessions_that_begin_during_the_canary_each_stay_on_one(
        self, shop: LocalDriver, browser: Any
    ) -> None:
        """New sessions at a 50% step split between the releases; each sees only its own."""
        shop.route({"r2": 0.5, "r1": 0.5})
        landed: Counter[str] = Counter()
        for _ in range(16):
            context = browser.new_context(base_url=shop.public_url())
            try:
                page = context.new_page()
                page.set_default_timeout(15_000)
                page.goto("/")
                seen = set(page.evaluate(FETCHES, 5))
            finally:
                context.close()
            assert len(seen) == 1, seen
            landed[seen.pop()] += 1
        assert landed["r1"] >= 1 and landed["r2"] >= 1, landed
