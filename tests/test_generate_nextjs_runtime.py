"""The generated Next.js files type-check under `tsc --strict` and do what they say when run.

TypeScript, `pg` and Node's types come from the npm registry (pinned, installed
once into a cache folder); `next/server` is the small stand-in in
tests/fixtures/nextjs_runtime. The compiled route handlers are served by
Node.js and called by `tower check` itself, against a real PostgreSQL and
local Stripe and Supabase servers that implement the endpoints the checks call.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from controltower.generate import apply, build
from controltower.spec import Spec, parse_spec
from controltower.spec.detect import detect
from controltower.spec.presets import render
from tests.backup_support import fresh_database
from tests.conftest import free_port, wait_for_port

FIXTURES = Path(__file__).parent / "fixtures" / "nextjs_runtime"
PACKAGES = ("typescript@5.6.3", "@types/node@20.17.6", "pg@8.13.1", "@types/pg@8.11.10")
STRIPE_KEY = "sk_test_51Hq8rT2mZk4LpX7wNb3Yc9dF"
ANON_KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlMQ"
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "target": "es2022",
        "lib": ["es2022", "dom", "dom.iterable"],
        "module": "commonjs",
        "moduleResolution": "node",
        "types": ["node"],
        "esModuleInterop": True,
        "skipLibCheck": True,  # as in the tsconfig `create-next-app` writes
        "noEmitOnError": True,
        "outDir": "build",
        "rootDir": ".",
    },
    "include": ["app/**/*.ts", "middleware.ts"],
}

pytestmark = pytest.mark.xdist_group("nextjs-runtime")


@pytest.fixture(scope="session")
def node_kit() -> Path:
    """TypeScript, pg and their types, installed once per machine from the npm registry."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed to check the generated TypeScript"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    kit = cache / "controltower-tests" / ("node-kit-" + "-".join(PACKAGES).replace("/", "_"))
    kit.parent.mkdir(parents=True, exist_ok=True)
    with (kit.parent / "node-kit.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (kit / "ready").exists():
            kit.mkdir(exist_ok=True)
            (kit / "package.json").write_text('{"private": true}\n')
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(kit), *PACKAGES],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"npm install failed: {done.stderr[-2000:]}"
            (kit / "ready").write_text("")
    return kit


def _spec(folder: Path) -> Spec:
    (folder / "package.json").write_text(
        json.dumps({"name": "shop", "dependencies": {"next": "15"}})
    )
    # The app's own code reads these, so `tower init` keeps them in the spec (and the health
    # route checks them); variables the code does not read are left out of the spec.
    (folder / "lib").mkdir()
    (folder / "lib" / "services.ts").write_text(
        "export const services = {\n"
        "  database: process.env.DATABASE_URL,\n"
        "  stripe: process.env.STRIPE_SECRET_KEY,\n"
        "  supabase: process.env.NEXT_PUBLIC_SUPABASE_URL,\n"
        "  supabaseKey: process.env.NEXT_PUBLIC_SUPABASE_ANON_KEY,\n"
        "};\n"
    )
    text = render("nextjs-fly", detect(folder))
    (folder / "tower.toml").write_text(text)
    return parse_spec(text, source=str(folder / "tower.toml"), env="production", environ={})


def _app(folder: Path, kit: Path) -> Spec:
    """The generated files, node_modules from the kit plus next/server, and a tsconfig."""
    spec = _spec(folder)
    # A TypeScript app (tsconfig.json) with its own next.config.mjs, which tower edits in place.
    (folder / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))
    (folder / "next.config.mjs").write_text(
        "const nextConfig = {};\n\nexport default nextConfig;\n"
    )
    for file in build(spec, "nextjs", folder):
        outcome = apply(file, folder, write=True)
        assert outcome.state == ("changed" if file.path == "next.config.mjs" else "created")
    modules = folder / "node_modules"
    modules.mkdir()
    for entry in (kit / "node_modules").iterdir():
        (modules / entry.name).symlink_to(entry, target_is_directory=True)
    next_dir = modules / "next"
    next_dir.mkdir()
    (next_dir / "package.json").write_text('{"name": "next", "version": "15.0.0"}\n')
    shutil.copy(FIXTURES / "next-server.js", next_dir / "server.js")
    shutil.copy(FIXTURES / "next-server.d.ts", next_dir / "server.d.ts")
    return spec


def _tsc(folder: Path, kit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(kit / "node_modules" / "typescript" / "bin" / "tsc"), "-p", str(folder)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=folder,
    )


@pytest.fixture(scope="module")
def compiled(node_kit: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("nextapp")
    _app(folder, node_kit)
    done = _tsc(folder, node_kit)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


class TestTypes:
    def test_strict_typecheck_and_compile(self, compiled: Path) -> None:
        """tsc --strict accepts every generated .ts file and compiles it."""
        for route in ("api/health", "api/health/live", "metrics"):
            assert (compiled / "build" / "app" / route / "route.js").is_file()
        assert (compiled / "build" / "middleware.js").is_file()

    def test_typecheck_can_fail(self, node_kit: Path, tmp_path: Path) -> None:
        """The same tsc run rejects a generated file with a type error slipped in."""
        _app(tmp_path, node_kit)
        route = tmp_path / "app" / "api" / "health" / "route.ts"
        route.write_text(
            route.read_text().replace(
                "const started = Date.now();", "const started: string = Date.now();"
            )
        )
        done = _tsc(tmp_path, node_kit)
        assert done.returncode != 0 and "error TS2322" in done.stdout


class Dependencies:
    """Local Stripe and Supabase: the endpoints the health route calls, with their auth."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.stripe_delay = 0.0
        self.supabase_status = 200
        self.seen: list[tuple[str, str]] = []
        server.expect_request("/v1/balance").respond_with_handler(self._stripe)
        server.expect_request("/auth/v1/health").respond_with_handler(self._supabase)

    def _stripe(self, request: Request) -> Response:
        self.seen.append(("stripe", request.headers.get("authorization", "")))
        if self.stripe_delay:
            time.sleep(self.stripe_delay)
        if request.headers.get("authorization") != f"Bearer {STRIPE_KEY}":
            return Response('{"error": {"type": "invalid_request_error"}}', status=401)
        return Response('{"object": "balance", "available": []}', content_type="application/json")

    def _supabase(self, request: Request) -> Response:
        self.seen.append(("supabase", request.headers.get("apikey", "")))
        if request.headers.get("apikey") != ANON_KEY:
            return Response('{"msg": "No API key found in request"}', status=401)
        return Response(
            '{"version": "v2.160.0", "name": "GoTrue"}',
            status=self.supabase_status,
            content_type="application/json",
        )


@contextlib.contextmanager
def _serve(folder: Path, environ: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, **environ, "NODE_ENV": "production"}
    process = subprocess.Popen(
        ["node", "--require", str(FIXTURES / "hosts.cjs"), str(FIXTURES / "serve.cjs"),
         str(folder / "build"), str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for_port(port, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def dependencies() -> Iterator[Dependencies]:
    server = HTTPServer(host="127.0.0.1", threaded=True)  # a slow Stripe must not hold up Supabase
    server.start()
    try:
        yield Dependencies(server)
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def database(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url, prefix="tower_next") as url:
        yield url


def _environ(database: str, deps: Dependencies) -> dict[str, str]:
    return {
        "DATABASE_URL": database,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "TEST_STRIPE_BASE": deps.server.url_for("").rstrip("/"),
        "NEXT_PUBLIC_SUPABASE_URL": deps.server.url_for("").rstrip("/"),
        "NEXT_PUBLIC_SUPABASE_ANON_KEY": ANON_KEY,
        "APP_VERSION": "2026.03.02-abc123",
    }


def _health(base: str) -> tuple[int, str, dict[str, Any], float]:
    begin = time.monotonic()
    response = httpx.get(f"{base}/api/health", timeout=30)
    return (
        response.status_code,
        response.headers["content-type"],
        response.json(),
        time.monotonic() - begin,
    )


@pytest.mark.postgres
class TestRunning:
    def test_readiness_in_ietf_format_and_tower_check_passes(
        self, compiled: Path, database: str, dependencies: Dependencies
    ) -> None:
        """All up: 200, application/health+json, one pass per dependency; `tower check` agrees."""
        with _serve(compiled, _environ(database, dependencies)) as base:
            status, kind, body, _ = _health(base)
            assert (status, kind) == (200, "application/health+json"), body
            assert body["status"] == "pass" and body["version"] == "2026.03.02-abc123"
            checks = body["checks"]
            assert set(checks) == {
                "postgres:responseTime",
                "stripe:responseTime",
                "supabase:responseTime",
                "uptime",
            }
            for name, (check,) in checks.items():
                assert check["status"] in ("pass", "warn"), (name, check)
                assert check["observedUnit"] in ("ms", "s") and check["observedValue"] >= 0
                assert check["time"].endswith("Z")
            assert checks["postgres:responseTime"][0]["componentType"] == "datastore"
            assert ("stripe", f"Bearer {STRIPE_KEY}") in dependencies.seen
            assert ("supabase", ANON_KEY) in dependencies.seen

            live = httpx.get(f"{base}/api/health/live", timeout=10)
            assert live.json()["status"] == "pass"

            done = subprocess.run(
                [sys.executable, "-m", "controltower", "check", "--spec",
                 str(compiled / "tower.toml"), "--url", base, "--only", "health.liveness",
                 "--only", "health.readiness", "--no-store", "--format", "json"],
                capture_output=True,
                text=True,
                timeout=120,
            )  # fmt: skip
            report = json.loads(done.stdout)
            statuses = {f["id"]: f["status"] for f in report["findings"]}
            assert statuses == {"health.liveness": "pass", "health.readiness": "pass"}, report

    def test_slow_stripe_times_out(
        self, compiled: Path, database: str, dependencies: Dependencies
    ) -> None:
        """A third party slower than the timeout is cut off on time and only warns: 200, status
        warn (a Stripe outage must not take the app out of routing); the others pass."""
        dependencies.stripe_delay = 4.0
        with _serve(compiled, _environ(database, dependencies)) as base:
            status, _kind, body, seconds = _health(base)
        assert status == 200 and body["status"] == "warn"  # a third party down only warns
        stripe = body["checks"]["stripe:responseTime"][0]
        assert stripe["status"] == "warn" and stripe["output"] == "timed out after 1000ms"
        assert body["checks"]["postgres:responseTime"][0]["status"] in ("pass", "warn")
        assert seconds < 3.5  # the route answered without waiting for Stripe

    def test_database_down_and_supabase_error(
        self, compiled: Path, database: str, dependencies: Dependencies
    ) -> None:
        """A database that refuses is a failure (503); Supabase answering 500 only warns."""
        dependencies.supabase_status = 500
        environ = _environ(database + "_missing", dependencies)
        with _serve(compiled, environ) as base:
            status, _kind, body, _ = _health(base)
        assert status == 503
        postgres = body["checks"]["postgres:responseTime"][0]
        assert postgres["status"] == "fail" and "does not exist" in postgres["output"]
        supabase = body["checks"]["supabase:responseTime"][0]
        assert supabase["status"] == "warn" and supabase["output"].endswith("answered 500")
        assert body["checks"]["stripe:responseTime"][0]["status"] in ("pass", "warn")

    def test_metrics_headers_and_static_csp(
        self, compiled: Path, database: str, dependencies: Dependencies
    ) -> None:
        """/metrics ([health] metrics) is Prometheus text; next.config's headers are sent; with
        no dynamic root layout the pages are prerendered, so the CSP is static (no nonce)."""
        with _serve(compiled, _environ(database, dependencies)) as base:
            metrics = httpx.get(f"{base}/metrics", timeout=10)
            pages = [httpx.get(f"{base}/", timeout=10) for _ in range(2)]
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        names = {family.name for family in text_string_to_metric_families(metrics.text)}
        assert {"process_resident_memory_bytes", "nodejs_heap_size_used_bytes"} <= names
        for response in (metrics, *pages):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["strict-transport-security"].startswith("max-age=")
            assert "x-powered-by" not in response.headers
        policies = [page.headers["content-security-policy"] for page in pages]
        assert policies[0] == policies[1] and "nonce" not in policies[0]
        assert "script-src 'self' 'unsafe-inline'" in policies[0]
        assert "frame-ancestors 'none'" in policies[0] and "object-src 'none'" in policies[0]
