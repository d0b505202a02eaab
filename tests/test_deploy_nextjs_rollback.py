"""Issue 14's rollback Done-when with a real Next.js app: two `next build`s, then `tower rollback`.

Build A and build B are the shared fixture app (tests/fixtures/nextjs_app) built
by ``next build`` with ``FIXTURE_BUILD`` baked in (scripts/nextjs.sh builds both
once per run). The working folder starts with build A's ``.next``; release 1.0
snapshots it, then build B's ``.next`` replaces it and release 2.0 snapshots
that. ``tower rollback`` must bring back release 1.0's snapshot (build A),
whatever the folder holds by then, while a constant load runs through the proxy.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy_load import Load
from tests.deploy_support import LocalSite, wait_until
from tests.nextjs_support import BUILD_B, NextBuild, build_or_fail, slow_build

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deploy-nextjs")]

NEXT_RATE = 20.0
"""Requests/s through the proxy. The example app's tests run at 200/s; ``next start`` spends
about 6.7 ms of CPU on each ``/api/build`` (measured on this 2-core machine), so 200/s would
need 1.3 cores for the app alone, more than the suite can spare next to its other worker
(see docs/deploy.md)."""

SPEC = """
[service]
name = "nextshop"
port = 3000

[environments.local]
url = "http://127.0.0.1:{proxy_port}"

[health]
readiness = "/api/health"
timeout = "5s"

[deploy]
driver = "local"
strategy = "immediate"
instances = 1
drain_timeout = "5s"

[deploy.local]
command = "node_modules/.bin/next start --port {{port}} --hostname 127.0.0.1"
cwd = "{app}"
artifact = [".next/", "package.json", "next.config.mjs"]
proxy_port = {proxy_port}
state_dir = "{state_dir}"

[deploy.local.env]
NEXT_TELEMETRY_DISABLED = "1"
SENTRY_SUPPRESS_GLOBAL_ERROR_HANDLER_FILE_WARNING = "1"

[deploy.health]
consecutive = 2
deadline = "90s"
interval = "200ms"
"""


def _put_build(app: Path, build: NextBuild) -> None:
    """The build's output in the working folder, as `next build` there would leave it."""
    shutil.rmtree(app / ".next", ignore_errors=True)
    shutil.copytree(
        build.folder / ".next", app / ".next", ignore=shutil.ignore_patterns("cache", "trace")
    )


class NextSite(LocalSite):
    """A tower.toml for the fixture app on the local driver (``next start`` behind the proxy)."""

    def __init__(self, root: Path, build_a: NextBuild) -> None:
        app = root / "app"
        app.mkdir()
        for name in ("package.json", "next.config.mjs"):
            shutil.copy(build_a.folder / name, app / name)
        (app / "node_modules").symlink_to(build_a.folder / "node_modules")
        super().__init__(root, app)

    def write(self, **_: Any) -> Path:
        self.spec_path.write_text(
            SPEC.format(proxy_port=self.proxy_port, app=self.app, state_dir=self.state_dir)
        )
        return self.spec_path

    def build(self) -> str:
        answer: str = httpx.get(self.url + "/api/build", timeout=30).json()["build"]
        return answer


@pytest.fixture
def site(tmp_path: Path) -> Iterator[NextSite]:
    opened = NextSite(tmp_path, build_or_fail())
    try:
        yield opened
    finally:
        opened.close()


class TestNextjsRollback:
    @slow_build
    def test_build_a_then_b_then_rollback_serves_a(self, site: NextSite) -> None:
        """deploy 1.0 (build A), deploy 2.0 (build B), `tower rollback`: every answer after it
        is build A, and not one request failed, under a constant 20 requests/s through the proxy.
        """
        build_b = build_or_fail(env=BUILD_B)
        _put_build(site.app, build_or_fail())
        first = site.engine().deploy(version="1.0")
        assert first.status == "succeeded", first.reason
        assert site.build() == "A"
        _put_build(site.app, build_b)
        second = site.engine().deploy(version="2.0")
        assert second.status == "succeeded", second.reason
        assert site.build() == "B"
        assert first.artifact_digest != second.artifact_digest
        load = Load(site.url, rate=NEXT_RATE, timeout=10.0, path="/api/build", keep_bodies=True)
        load.start()
        try:
            wait_until(lambda: load.result.ok >= NEXT_RATE, deadline=60, what="load warmed up")
            began = load.mark()
            rolled = site.tower("rollback", "--format", "json")
            done = load.mark()
            time.sleep(2.0)
        finally:
            result = load.stop()
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        back = json.loads(rolled.stdout)
        assert back["version"] == "1.0" and back["artifact"]["digest"] == first.artifact_digest
        assert result.failed == 0, f"{result.failed} of {result.sent} failed: {result.failures[:5]}"
        assert result.rate >= NEXT_RATE * 0.95, f"the load ran at {result.rate:.0f} requests/s"
        before = {json.loads(b)["build"] for at, b in result.bodies if at < began}
        after = [json.loads(b)["build"] for at, b in result.bodies if at > done]
        assert before == {"B"}
        assert len(after) >= NEXT_RATE and set(after) == {"A"}
