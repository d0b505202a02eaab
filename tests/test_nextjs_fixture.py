"""The shared Next.js fixture app: built once per run, served by `next start`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.nextjs_support import (
    FIXTURE,
    NextBuild,
    NextServer,
    _digest,
    copy_fixture,
    slow_build,
)


class TestFixtureApp:
    @slow_build
    def test_built_app_serves_its_pages_and_routes(
        self, next_app: NextBuild, next_server: Callable[..., NextServer]
    ) -> None:
        """The built fixture answers its prerendered page and its dynamic routes, and the
        build left source maps with debug IDs (from `sentry-cli sourcemaps inject`)."""
        server = next_server(next_app)
        page = httpx.get(server.url + "/", timeout=30)
        assert page.status_code == 200
        assert "Fixture shop" in page.text
        assert re.search(r'id="build">build (<!-- -->)?A<', page.text)
        assert httpx.get(server.url + "/api/build", timeout=30).json() == {"build": "A"}
        chunks = next_app.folder / ".next" / "static" / "chunks" / "app"
        [page_js] = chunks.glob("page-*.js")
        assert "//# debugId=" in page_js.read_text()
        assert (chunks / (page_js.name + ".map")).is_file()

    def test_build_key_follows_sources_and_build_env(self, tmp_path: Path) -> None:
        """A changed source file or another build-time env makes another build; the same
        sources and env share one."""
        copy = copy_fixture(tmp_path / "app")
        assert _digest(copy, {}, sources=True) == _digest(FIXTURE, {}, sources=True)
        assert _digest(copy, {"FIXTURE_BUILD": "B"}, sources=True) != _digest(
            copy, {}, sources=True
        )
        (copy / "app" / "page.tsx").write_text("export default function P() { return null; }\n")
        assert _digest(copy, {}, sources=True) != _digest(FIXTURE, {}, sources=True)
