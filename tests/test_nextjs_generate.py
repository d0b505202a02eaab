"""`tower generate nextjs`: files that follow the app (language, folders, config file), and,
on real apps built with `next build`, pages that hydrate in Chromium under the generated CSP,
a health route that fails only with the database, and a `tower check --gate 2` that passes.

The built apps are tests/fixtures/nextjs_generated/{js,ts} (see its README), generated and
built once per run by tests/nextjs_generated.py (scripts/nextjs.sh starts it in CI).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from controltower.generate.nextjs import add_web_vitals, edit_config
from tests.browser_support import chromium
from tests.conftest import free_port
from tests.nextjs_generated import APPS, GeneratedApp, built_app, generate, tower
from tests.nextjs_support import NextServer, slow_build

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


def _page_violations(browser: Any, url: str, beacons: list[dict[str, Any]]) -> list[str]:
    """Load ``url``, click the counter until React has hydrated the page, and return the CSP
    violations Chromium reported; the web-vitals beacons to tower go into ``beacons``."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)

    def beacon(route: Any) -> None:
        request = route.request
        beacons.append({"url": request.url, "body": json.loads(request.post_data or "{}")})
        route.fulfill(status=202, body="")

    page.route("http://127.0.0.1:9/**", beacon)
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation', e =>"
        " window.__violations.push(e.effectiveDirective + ' ' + e.blockedURI));"
    )
    try:
        page.goto(url)
        deadline = time.monotonic() + 30
        while (
            page.get_attribute("#counter", "data-count") == "0"
        ):  # clicks before hydration are lost
            assert time.monotonic() < deadline, "the page never hydrated"
            page.click("#counter")
            page.wait_for_timeout(200)
        violations: list[str] = page.evaluate("window.__violations")
        page.goto("about:blank")  # the page is hidden: web-vitals sends what it still holds
        page.wait_for_timeout(500)
    finally:
        context.close()
    return violations


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _standalone(app: GeneratedApp, folder: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The generated Dockerfile's runtime stage without Docker: its COPY lines laid out in
    ``folder`` (hard links), then its CMD run there."""
    dockerfile = (app.sources / "Dockerfile").read_text()
    assert "COPY --from=build --chown=1000:1000 /app/.next/standalone ./" in dockerfile
    assert "COPY --from=build --chown=1000:1000 /app/.next/static ./.next/static" in dockerfile
    cmd = next(json.loads(line[4:]) for line in dockerfile.splitlines() if line.startswith("CMD "))
    assert cmd == ["node", "server.js"]
    built = app.build.folder / ".next"
    subprocess.run(["cp", "-al", str(built / "standalone"), str(folder)], check=True)
    subprocess.run(
        ["cp", "-al", str(built / "static"), str(folder / ".next" / "static")], check=True
    )
    return subprocess.Popen(
        cmd,
        cwd=folder,
        env={**os.environ, "NODE_ENV": "production", "NEXT_TELEMETRY_DISABLED": "1", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.2)


@pytest.fixture
def serve(tmp_path: Path, next_server: Callable[..., NextServer]) -> Iterator[Callable[..., str]]:
    """``serve(app, **env)``: the JavaScript app (standalone output) by its Dockerfile's CMD,
    the TypeScript app by `next start`; returns the base URL."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(app: GeneratedApp, **env: str) -> str:
        if app.language == "ts":
            return next_server(app.build, **env).url
        port = free_port()
        folder = tmp_path / f"standalone-{len(processes)}"
        processes.append(
            _standalone(app, folder, {**env, "PORT": str(port), "HOSTNAME": "127.0.0.1"})
        )
        url = f"http://127.0.0.1:{port}"
        _wait(url + "/api/health/live")
        return url

    yield start
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.browser
@pytest.mark.postgres
@slow_build
@pytest.mark.parametrize("language", ["js", "ts"])
class TestBuiltApp:
    def test_builds_hydrates_and_passes_gate_2(
        self, language: str, postgres_url: str, serve: Callable[..., str], browser: Any
    ) -> None:
        """`tower generate all --write` then `next build`: every page hydrates in Chromium with
        no CSP violation and sends its web vitals to tower; health is 200 with the database up
        (Stripe unreachable only warns); /metrics is Prometheus text; the API is rate limited;
        `tower check --url ... --gate 2` passes, the browser CSP check included."""
        app = built_app(language)
        env = {"DATABASE_URL": postgres_url, "STRIPE_SECRET_KEY": STRIPE_KEY,
               "APP_VERSION": "2026.12.03"}  # fmt: skip
        url = serve(app, **env)
        health = httpx.get(url + "/api/health", timeout=30)
        assert health.status_code == 200, health.text
        checks = health.json()["checks"]
        assert checks["postgres:responseTime"][0]["status"] in ("pass", "warn")
        assert checks["stripe:responseTime"][0]["status"] == "warn"  # no network to Stripe here

        page = httpx.get(url + "/", timeout=30)
        policy = page.headers["content-security-policy"]
        assert ("'nonce-" in policy) is (language == "ts"), policy  # the ts layout is dynamic
        beacons: list[dict[str, Any]] = []
        for path in ("/", "/about"):
            assert _page_violations(browser, url + path, beacons) == [], path
        pages = {b["body"]["page"] for b in beacons}
        assert pages == {"/", "/about"}, beacons
        first = beacons[0]
        assert first["url"].startswith(
            "http://127.0.0.1:9/api/v1/vitals/7?sentry_key=0123456789abcdef0123456789abcdef"
        )
        assert set(first["body"]) == {"name", "value", "id", "page", "release"}
        assert {b["body"]["name"] for b in beacons} >= {"TTFB", "FCP"}

        metrics = httpx.get(url + "/metrics", timeout=10)
        assert metrics.status_code == 200 and "process_resident_memory_bytes" in metrics.text

        done = tower(app.sources, "check", "--url", url, "--gate", "2", "--no-store",
                     "--format", "json", **env)  # fmt: skip
        report = json.loads(done.stdout)
        bad = [f for f in report["findings"] if f["status"] in ("fail", "error")]
        assert done.returncode == 0, json.dumps(bad, indent=1)[:6000]
        statuses = {f["id"]: f["status"] for f in report["findings"]}
        assert statuses["security.csp_browser"] == "pass"
        assert statuses["security.rate_limit"] == "pass"
        assert statuses["observability.metrics"] == "pass"

        answers = [httpx.get(url + "/api/anything", timeout=10) for _ in range(31)]
        first = answers[0]  # the check's burst may have emptied the bucket already
        assert first.headers["ratelimit-policy"] == '"default";q=30;w=60'
        limited = answers[-1]  # 31 requests within seconds: past the 30 a minute
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json() == {"error": "too many requests"}

    def test_health_is_503_only_without_the_database(
        self, language: str, postgres_url: str, serve: Callable[..., str]
    ) -> None:
        """With the database down readiness is 503 (postgres: fail) while liveness, which Fly
        routes by, stays 200."""
        app = built_app(language)
        url = serve(app, DATABASE_URL=postgres_url + "_missing", STRIPE_SECRET_KEY=STRIPE_KEY)
        health = httpx.get(url + "/api/health", timeout=30)
        assert health.status_code == 503
        assert health.json()["checks"]["postgres:responseTime"][0]["status"] == "fail"
        assert httpx.get(url + "/api/health/live", timeout=10).status_code == 200


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
