"""`tower generate nextjs`: files that follow the app (language, folders, config file, how
its pages render), and the `security.csp_browser` check that loads a page in Chromium.

The apps are tests/fixtures/nextjs_generated/{js,ts} (see its README).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from controltower.generate.nextjs import add_web_vitals, edit_config
from tests.browser_support import chromium
from tests.nextjs_generated import APPS, generate, tower

STRIPE_KEY = "sk_test_51Hq8rT2mZk4LpX7wNb3Yc9dF"


def _files(folder: Path) -> set[str]:
    skip = {"node_modules", ".next"}
    return {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(folder).parts)
    }


class TestFollowsTheApp:
    def test_javascript_app_gets_javascript_in_place(self, tmp_path: Path) -> None:
        """A JavaScript app (no tsconfig): its own app/api/health/route.js is rewritten, no
        route.ts beside it; next.config.js is edited in place (no second config); every new
        file is .js/.jsx; the root layout renders the web-vitals beacon."""
        before = _files(APPS / "js")
        generate("js", tmp_path / "app")
        folder = tmp_path / "app"
        created = _files(folder) - before
        assert not [f for f in created if f.endswith((".ts", ".tsx"))], created
        assert "app/api/health/route.ts" not in created
        health = (folder / "app/api/health/route.js").read_text()
        assert "written by `tower generate nextjs`" in health.lower() and "pg" in health
        assert sorted(p.name for p in folder.glob("next.config.*")) == ["next.config.js"]
        config = (folder / "next.config.js").read_text()
        assert config.count("module.exports = nextConfig;") == 1
        assert 'output: "standalone"' in config and "poweredByHeader: false" in config
        assert "Content-Security-Policy" in config and "nonce" not in config  # prerendered
        for name in ("middleware.js", "instrumentation.js", "instrumentation-client.js",
                     "app/web-vitals.jsx", "app/api/health/live/route.js", "app/metrics/route.js"):  # fmt: skip
            assert name in created, name
        assert "<WebVitals />" in (folder / "app/layout.js").read_text()
        for name in sorted(f for f in created if f.endswith(".js")):  # the types were removed
            check = subprocess.run(
                ["node", "--check", "--input-type=module"],
                input=(folder / name).read_text(),
                capture_output=True,
                text=True,
            )
            assert check.returncode == 0, (name, check.stderr)

    def test_typescript_app_in_src_with_a_dynamic_layout(self, tmp_path: Path) -> None:
        """A TypeScript app in src/app whose layout reads headers(): the files go under src/,
        the CSP is a nonce set per request by src/middleware.ts (not in next.config), and the
        user's poweredByHeader is not set twice."""
        generate("ts", tmp_path / "app")
        folder = tmp_path / "app"
        for name in ("src/app/api/health/route.ts", "src/app/api/health/live/route.ts",
                     "src/app/metrics/route.ts", "src/middleware.ts", "src/instrumentation.ts",
                     "src/instrumentation-client.ts", "src/app/web-vitals.tsx"):  # fmt: skip
            assert (folder / name).is_file(), name
        assert not (folder / "app").exists() and not (folder / "middleware.ts").exists()
        config = (folder / "next.config.ts").read_text()
        assert config.count("poweredByHeader") == 1
        assert "Content-Security-Policy" not in config
        middleware = (folder / "src/middleware.ts").read_text()
        assert "'nonce-${nonce}' 'strict-dynamic'" in middleware

    def test_config_that_sets_headers_is_left_with_the_patch(self, tmp_path: Path) -> None:
        """A next.config.mjs with its own headers() is not rewritten: it is unchanged, and the
        exact block to merge is printed; running again changes nothing."""
        folder = tmp_path / "app"
        shutil.copytree(APPS / "js", folder)
        (folder / "next.config.js").unlink()
        own = (
            "const config = {\n  async headers() {\n    return [];\n  },\n};\n\n"
            "export default config;\n"
        )
        (folder / "next.config.mjs").write_text(own)
        (folder / "package.json").write_text('{"dependencies": {"next": "15.5.29"}}\n')
        done = tower(folder, "generate", "nextjs", "--write", "--format", "json")
        assert done.returncode == 0, done.stderr
        outcome = next(
            f for f in json.loads(done.stdout)["files"] if f["path"] == "next.config.mjs"
        )
        assert outcome["state"] == "unchanged"
        assert (
            "async headers()" in outcome["notes"][0]
            and "Strict-Transport-Security" in outcome["notes"][0]
        )
        assert (folder / "next.config.mjs").read_text() == own
        assert sorted(p.name for p in folder.glob("next.config.*")) == ["next.config.mjs"]

    def test_config_block_is_kept_current(self) -> None:
        """Editing twice gives the same file; an unusual shape (two config objects) is refused."""
        text = "const nextConfig = {\n  reactStrictMode: true,\n};\nmodule.exports = nextConfig;\n"
        once = edit_config(
            text,
            lambda powered: (
                "  // Security headers: added by `tower generate nextjs`, which keeps this block current.\n  x: 1,\n  // End of the block added by tower.\n"
            ),
        )
        assert once is not None and "x: 1" in once
        again = edit_config(
            once,
            lambda powered: (
                "  // Security headers: added by `tower generate nextjs`, which keeps this block current.\n  x: 2,\n  // End of the block added by tower.\n"
            ),
        )
        assert again is not None and "x: 2" in again and "x: 1" not in again
        twice = text + "const nextConfig = {};\n"
        assert edit_config(twice, lambda powered: "") is None

    def test_users_own_middleware_is_kept(self, tmp_path: Path) -> None:
        """An app's own middleware.js is never replaced: unchanged, with tower's version shown."""
        folder = tmp_path / "app"
        shutil.copytree(APPS / "js", folder)
        own = "export function middleware() {}\n"
        (folder / "middleware.js").write_text(own)
        done = tower(folder, "generate", "nextjs", "--write", "--format", "json")
        outcome = next(f for f in json.loads(done.stdout)["files"] if f["path"] == "middleware.js")
        assert outcome["state"] == "unchanged" and "is yours" in outcome["notes"][0]
        assert (folder / "middleware.js").read_text() == own
        assert not (folder / "middleware.ts").exists()

    def test_layout_without_children_gets_the_patch(self) -> None:
        """A layout with no JSX {children} cannot be edited: None (the patch is printed)."""
        assert add_web_vitals("export default function L() { return null; }\n", "./w") is None
        edited = add_web_vitals(
            "export default function L({ children }) {\n  return <body>{children}</body>;\n}\n",
            "./w",
        )
        assert edited is not None and "<body><WebVitals />{children}</body>" in edited


class TestPaths:
    def test_metrics_path_and_fly_routing_follow_the_spec(self, tmp_path: Path) -> None:
        """[health] metrics names the route and fly.toml's [metrics]; Fly routes by liveness
        only, readiness is a top-level machine check."""
        folder = tmp_path / "app"
        shutil.copytree(APPS / "ts", folder)
        spec = folder / "tower.toml"
        spec.write_text(
            spec.read_text().replace('metrics = "/metrics"', 'metrics = "/internal/metrics"')
        )
        done = tower(folder, "generate", "all", "--write")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (folder / "src/app/internal/metrics/route.ts").is_file()
        fly = tomllib.loads((folder / "fly.toml").read_text())
        assert fly["metrics"]["path"] == "/internal/metrics"
        assert [c["path"] for c in fly["http_service"]["checks"]] == ["/api/health/live"]
        assert fly["checks"]["readiness"]["path"] == "/api/health"


BAD_PAGE = (
    "<!doctype html><html><body><p id=s>static</p>"
    "<script>document.getElementById('s').textContent = 'ran';</script></body></html>"
)


@pytest.mark.browser
class TestBrowserCheck:
    def _check(self, tmp_path: Path, url: str, **environ: str) -> dict[str, Any]:
        (tmp_path / "tower.toml").write_text('[service]\nname = "page"\nstack = "other"\n')
        done = subprocess.run(
            [sys.executable, "-m", "controltower", "check", "--url", url, "--only",
             "security.csp_browser", "--no-store", "--format", "json"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env={**os.environ, **environ},
        )  # fmt: skip
        finding: dict[str, Any] = json.loads(done.stdout)["findings"][0]
        return finding

    def _serve(self, httpserver: HTTPServer, policy: str) -> str:
        httpserver.expect_request("/").respond_with_data(
            BAD_PAGE, content_type="text/html", headers={"Content-Security-Policy": policy}
        )
        return httpserver.url_for("/").rstrip("/")

    def test_nonce_policy_on_a_prerendered_page_fails(
        self, tmp_path: Path, httpserver: HTTPServer
    ) -> None:
        """A nonce + 'strict-dynamic' policy on a page whose inline script has no nonce (a
        prerendered page) blocks the page's own script: the check fails and says which."""
        with chromium():  # skips (or fails under TOWER_REQUIRE_BROWSER) without Chromium
            pass
        url = self._serve(httpserver, "script-src 'self' 'nonce-abc123' 'strict-dynamic'")
        finding = self._check(tmp_path, url)
        assert finding["status"] == "fail", finding
        assert "script-src" in finding["message"] and "inline" in finding["message"]

    def test_policy_that_allows_the_page_passes(
        self, tmp_path: Path, httpserver: HTTPServer
    ) -> None:
        """The same page under script-src 'self' 'unsafe-inline': pass, no violation."""
        with chromium():
            pass
        url = self._serve(httpserver, "default-src 'self'; script-src 'self' 'unsafe-inline'")
        assert self._check(tmp_path, url)["status"] == "pass"

    def test_without_chromium_it_is_skipped(self, tmp_path: Path, httpserver: HTTPServer) -> None:
        """No Chromium where TOWER_CHROMIUM points: skipped with the reason, never pass."""
        url = self._serve(httpserver, "script-src 'nonce-abc123' 'strict-dynamic'")
        none = str(tmp_path / "none")
        finding = self._check(tmp_path, url, TOWER_CHROMIUM=none, CHROME_PATH=none, PATH=none)
        assert finding["status"] == "skip" and "Chromium" in finding["message"]
