from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from controltower.generate import apply, build, merge_toml
from controltower.generate.common import fly_app_name
from controltower.generate.files import GeneratedFile
from controltower.spec import Spec, parse_spec
from controltower.spec.detect import Detected
from controltower.spec.presets import render
from controltower.spec.service import Stack
from controltower.units import parse_size

HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


def _spec(preset: str, folder: Path, env: str | None = "production", **service: str) -> Spec:
    # The preset as written (no repository scanned): these tests judge the generators.
    text = render(preset, Detected(name=folder.name.lower(), target="other"))
    for key, value in service.items():
        text = re.sub(rf"^{key} = .*$", f'{key} = "{value}"', text, count=1, flags=re.M)
    (folder / "tower.toml").write_text(text)
    return parse_spec(text, source=str(folder / "tower.toml"), env=env, environ={})


def _one(spec: Spec, target: str, folder: Path, **options: str) -> str:
    files = build(spec, target, folder, **options)  # type: ignore[arg-type]
    assert len(files) == 1
    return files[0].content


@pytest.fixture
def nextjs(tmp_path: Path) -> Spec:
    return _spec("nextjs-fly", tmp_path, stack="nextjs", memory="1gb")


@pytest.fixture
def python(tmp_path: Path) -> Spec:
    return _spec("python-asgi", tmp_path, stack="python-asgi", memory="512mb")


class TestFlyToml:
    @pytest.mark.parametrize(
        ("service", "app"),
        [("shop", "shop"), ("My_Shop.web", "my-shop-web"), ("__x__", "x"), ("___", "app")],
    )
    def test_app_name_from_the_service_name(self, service: str, app: str) -> None:
        """A service name becomes a Fly app name: lowercase letters, digits and single dashes."""
        assert fly_app_name(service) == app

    def test_production_readiness(self, nextjs: Spec, tmp_path: Path) -> None:
        """The fly.toml meets every readiness rule for a production Fly app."""
        (tmp_path / "prisma").mkdir()
        (tmp_path / "prisma" / "schema.prisma").write_text("")
        doc = tomllib.loads(_one(nextjs, "fly-toml", tmp_path))
        vm = doc["vm"][0]
        assert parse_size(vm["memory"]) == nextjs.service.memory >= 512 * 1024**2
        assert (vm["cpus"], vm["cpu_kind"]) == (1, "shared")
        http = doc["http_service"]
        assert http["internal_port"] == nextjs.service.port
        assert http["force_https"] is True
        assert http["auto_stop_machines"] == "off"
        assert http["min_machines_running"] >= 2
        concurrency = http["concurrency"]
        assert concurrency["type"] == "requests"
        assert 0 < concurrency["soft_limit"] < concurrency["hard_limit"]
        # Fly routes by liveness only; readiness is a machine check it does not route by.
        assert [check["path"] for check in http["checks"]] == [nextjs.health.liveness]
        assert doc["checks"]["readiness"]["path"] == nextjs.health.readiness
        assert doc["deploy"]["strategy"] == "canary"  # the production overlay's strategy
        assert doc["deploy"]["release_command"] == "npx prisma migrate deploy"
        assert "build" not in doc["deploy"]["release_command"]
        assert doc["kill_signal"] == "SIGTERM" and doc["kill_timeout"] >= 5
        assert doc["metrics"] == {"port": nextjs.service.port, "path": nextjs.health.metrics}
        assert doc["env"]["NODE_OPTIONS"] == "--max-old-space-size=768"

    def test_staging_may_scale_to_one(self, tmp_path: Path) -> None:
        """Outside production machines may stop, but one keeps running."""
        spec = _spec("nextjs-fly", tmp_path, env="staging", stack="nextjs")
        http = tomllib.loads(_one(spec, "fly-toml", tmp_path))["http_service"]
        assert http["auto_stop_machines"] == "stop" and http["min_machines_running"] == 1

    def test_merge_keeps_comments_and_unknown_keys(self, nextjs: Spec, tmp_path: Path) -> None:
        """An existing fly.toml keeps its comments, extra keys and every value no check
        requires to change (its internal_port too); missing keys are added."""
        existing = (
            "# ours\n"
            'app = "shop"  # the app\n'
            "swap_size_mb = 512\n\n"
            "[http_service]\n"
            "internal_port = 3000  # stale\n"
            "[[mounts]]\n"
            'source = "data"\n'
            'destination = "/data"\n'
        )
        (tmp_path / "fly.toml").write_text(existing)
        generated = build(nextjs, "fly-toml", tmp_path)[0]
        outcome = apply(generated, tmp_path, write=False)
        assert outcome.state == "would-change"
        assert "-internal_port" not in outcome.diff and "+[metrics]" in outcome.diff
        assert (tmp_path / "fly.toml").read_text() == existing  # nothing written without --write
        outcome = apply(generated, tmp_path, write=True)
        assert outcome.state == "changed"
        merged = (tmp_path / "fly.toml").read_text()
        assert merged.startswith("# ours\n")
        assert "# the app" in merged and "swap_size_mb = 512" in merged
        doc = tomllib.loads(merged)
        assert doc["mounts"] == [{"source": "data", "destination": "/data"}]
        assert doc["http_service"]["internal_port"] == 3000
        assert doc["http_service"]["force_https"] is True
        assert apply(generated, tmp_path, write=True).state == "unchanged"

    def test_a_failing_check_changes_only_its_keys(self, nextjs: Spec, tmp_path: Path) -> None:
        """A value a fly.toml check rejects is changed, and the note names the check and its
        finding; a secret in [env] is removed, its value redacted in the diff and printed
        nowhere, with the `fly secrets set` command in the note."""
        existing = (
            'app = "shop"\nprimary_region = "fra"\n\n[env]\n  FEATURE = "on"\n'
            '  STRIPE_SECRET_KEY = "sk_live_51Hq8rT2mZk4LpX7wNb3Yc9dF"\n\n'
            '[[vm]]\n  memory = "256mb"\n'
        )
        (tmp_path / "fly.toml").write_text(existing)
        outcome = apply(build(nextjs, "fly-toml", tmp_path)[0], tmp_path, write=True)
        text = (tmp_path / "fly.toml").read_text()
        doc = tomllib.loads(text)
        assert doc["primary_region"] == "fra" and doc["env"]["FEATURE"] == "on"
        assert "STRIPE_SECRET_KEY" not in doc["env"]
        assert "sk_live_" not in text + outcome.diff + " ".join(outcome.notes)
        assert "-  STRIPE_SECRET_KEY = <redacted>" in outcome.diff
        assert any("fly secrets set STRIPE_SECRET_KEY=<value> -a shop" in n for n in outcome.notes)
        assert doc["vm"][0]["memory"] == "1gb"
        assert any(n.startswith("fly.memory: the VM has 256 MB") for n in outcome.notes)
        assert '  memory = "1gb"' in text  # the user's indentation stays

    def test_merge_is_idempotent(self) -> None:
        once = merge_toml("a = 1\n[t]\nx = 1\n", "b = 2\n[t]\ny = 2\n")
        assert merge_toml(once, "b = 2\n[t]\ny = 2\n") == once
        assert tomllib.loads(once) == {"a": 1, "b": 2, "t": {"x": 1, "y": 2}}


class TestDockerfile:
    @pytest.mark.parametrize(
        ("preset", "lockfile"),
        [
            ("nextjs", "package-lock.json"),
            ("nextjs", "pnpm-lock.yaml"),
            ("nextjs", "yarn.lock"),
            ("python", "requirements.txt"),
            ("python", "pyproject.toml"),
        ],
    )
    def test_hadolint_finds_nothing(
        self, preset: str, lockfile: str, request: pytest.FixtureRequest, tmp_path: Path
    ) -> None:
        """Every variant of the generated Dockerfile passes hadolint with no warning, info or error."""
        spec: Spec = request.getfixturevalue(preset)
        (tmp_path / lockfile).write_text("")
        text = _one(spec, "dockerfile", tmp_path)
        installs = {
            "package-lock.json": "RUN npm ci",
            "pnpm-lock.yaml": "pnpm install --frozen-lockfile",
            "yarn.lock": "yarn install --immutable",
            "requirements.txt": "pip install --no-cache-dir -r requirements.txt",
            "pyproject.toml": "pip install --no-cache-dir .",
        }
        assert installs[lockfile] in text
        path = tmp_path / "Dockerfile.generated"
        path.write_text(text)
        result = subprocess.run(
            [HADOLINT, "--no-color", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and result.stdout == "", result.stdout

    def test_hadolint_would_catch_a_problem(self, tmp_path: Path) -> None:
        """The hadolint run above is real: an unpinned image is reported."""
        path = tmp_path / "Dockerfile"
        path.write_text("FROM node:latest\nRUN apt-get install -y curl\n")
        result = subprocess.run([HADOLINT, "--no-color", str(path)], capture_output=True, text=True)
        assert result.returncode != 0 and "DL3007" in result.stdout

    @pytest.mark.parametrize("preset", ["nextjs", "python"])
    def test_readiness_rules(
        self, preset: str, request: pytest.FixtureRequest, tmp_path: Path
    ) -> None:
        """Multi-stage, pinned, non-root, tini, HEALTHCHECK, JSON CMD, no secrets in ENV/ARG."""
        spec: Spec = request.getfixturevalue(preset)
        text = _one(spec, "dockerfile", tmp_path)
        froms = re.findall(r"^FROM (\S+)", text, re.M)
        assert len(froms) >= 2
        for image in froms:
            if ":" in image:
                tag = image.split(":", 1)[1]
                assert tag != "latest" and re.match(r"\d+\.\d+\.\d+", tag)
        users = re.findall(r"^USER (\S+)", text, re.M)
        assert users and users[-1].split(":")[0] not in ("root", "0")
        assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in text
        assert re.search(r"^HEALTHCHECK .*\n\s+CMD \[", text, re.M)
        assert spec.health.liveness in text
        cmd = re.findall(r"^CMD (.*)$", text, re.M)[-1]
        assert json.loads(cmd)
        for line in re.findall(r"^(?:ENV|ARG) .*(?:\n\s+.*)*", text, re.M):
            for name in spec.env.vars:
                if spec.env.vars[name].secret:
                    assert name not in line
            assert not re.search(r"(SECRET|TOKEN|PASSWORD|API_KEY)", line)
        if preset == "nextjs":
            assert "NODE_ENV=production" in text
            heap = int(re.search(r"--max-old-space-size=(\d+)", text).group(1))  # type: ignore[union-attr]
            memory_mb = spec.service.memory // 1024**2
            assert 0.6 * memory_mb <= heap <= 0.8 * memory_mb
            assert "/app/.next/standalone" in text


class TestWorkflow:
    def test_pipeline(self, nextjs: Spec, tmp_path: Path) -> None:
        """Tests with a PostgreSQL service, gate 2, deploy, check after; secrets by name only."""
        text = _one(nextjs, "github-actions", tmp_path)
        assert "services:\n      postgres:\n        image: postgres:16" in text
        assert "tower check --static --gate 2 --env production" in text
        assert "upload-sarif" in text and "security-events: write" in text
        assert "flyctl deploy --build-only --push" in text and "tower deploy --image" in text
        assert "needs: test" in text and "needs: gate" in text
        assert text.index("flyctl deploy") < text.index("tower check --env production")
        assert "STRIPE_SECRET_KEY: ${{ secrets.STRIPE_SECRET_KEY }}" in text
        assert "FLY_API_TOKEN: ${{ secrets.FLY_API_TOKEN }}" in text
        assert "NEXT_PUBLIC_SITE_URL: ${{ vars.NEXT_PUBLIC_SITE_URL }}" in text
        assert "@master" not in text and "@main" not in text

    def test_vercel_flavour(self, tmp_path: Path) -> None:
        """driver = "vercel": vercel pull and build --prod, then tower deploy makes the staged
        deployment; the token and bypass secret by name, no flyctl."""
        text = render("nextjs-fly", Detected(name="shop", target="other"))
        text = re.sub(r"^driver = .*$", 'driver = "vercel"', text, count=1, flags=re.M)
        text = re.sub(r"^target = .*$", 'target = "vercel"', text, count=1, flags=re.M)
        text += '\n[deploy.vercel]\nproject = "prj_1"\nsource = "prebuilt"\n'
        spec = parse_spec(text, source=str(tmp_path / "tower.toml"), env="production", environ={})
        workflow = _one(spec, "github-actions", tmp_path)
        assert "VERCEL_TOKEN: ${{ secrets.VERCEL_TOKEN }}" in workflow
        assert (
            "VERCEL_AUTOMATION_BYPASS_SECRET: ${{ secrets.VERCEL_AUTOMATION_BYPASS_SECRET }}"
            in workflow
        )
        assert "npm install --global vercel@58.10.0" in workflow
        pull, build_, deploy = (
            workflow.index("vercel pull --yes --environment=production"),
            workflow.index("vercel build --prod"),
            workflow.index('tower deploy --version "${{ github.sha }}" --env production'),
        )
        assert pull < build_ < deploy < workflow.index("tower check --env production")
        assert "flyctl" not in workflow

    def test_is_yaml_when_a_parser_is_at_hand(self, python: Spec, tmp_path: Path) -> None:
        yaml = pytest.importorskip("yaml")
        doc = yaml.safe_load(_one(python, "github-actions", tmp_path))
        assert set(doc["jobs"]) == {"test", "gate", "deploy"}
        assert doc["jobs"]["deploy"]["steps"][-1]["run"] == "tower check --env production"


class TestEnvExample:
    def test_secrets_are_empty(self, nextjs: Spec) -> None:
        """Every catalog variable appears; secrets get an empty value and a comment."""
        text = build(nextjs, "env-example", Path("."))[0].content
        for name, var in nextjs.env.vars.items():
            assert re.search(rf"^{name}=", text, re.M)
            if var.secret:
                assert re.search(rf"^{name}=$", text, re.M)
        assert "# Stripe secret key" in text and "secret: set it in the environment" in text


class TestNextjs:
    def test_files(self, nextjs: Spec, tmp_path: Path) -> None:
        """In an empty folder: TypeScript health, liveness and metrics routes at the spec's
        paths, next.config.ts with the headers and a static CSP (no layout renders per
        request), the rate-limiting middleware, Sentry wiring and the web-vitals beacon."""
        files = {f.path: f.content for f in build(nextjs, "nextjs", tmp_path)}
        assert set(files) == {
            "app/api/health/route.ts",
            "app/api/health/live/route.ts",
            "app/metrics/route.ts",
            "next.config.ts",
            "middleware.ts",
            "instrumentation.ts",
            "instrumentation-client.ts",
            "app/web-vitals.tsx",
        }
        health = files["app/api/health/route.ts"]
        assert "application/health+json" in health
        for key in ("stripe:responseTime", "supabase:responseTime", "AbortController"):
            assert key in health
        assert 'status: status === "fail" ? 503 : 200' in health
        assert 'status: critical ? "fail" : "warn"' in health
        config = files["next.config.ts"]
        for needle in (
            'output: "standalone"',
            "poweredByHeader: false",
            "productionBrowserSourceMaps: false",
            "Strict-Transport-Security",
            "X-Content-Type-Options",
            "Referrer-Policy",
            "Permissions-Policy",
            "script-src 'self' 'unsafe-inline'",
            "frame-ancestors 'none'",
        ):
            assert needle in config
        assert "'nonce-" not in config
        middleware = files["middleware.ts"]
        assert "nonce" not in middleware and "Retry-After" in middleware
        assert "RateLimit-Policy" in middleware and "status: 429" in middleware
        assert "dsn: process.env.SENTRY_DSN" in files["instrumentation.ts"]
        assert "useReportWebVitals" in files["app/web-vitals.tsx"]

    def test_dynamic_layout_gets_a_nonce(self, nextjs: Spec, tmp_path: Path) -> None:
        """A root layout that reads cookies() renders per request: the CSP moves from
        next.config to the middleware, with a fresh nonce and 'strict-dynamic'."""
        (tmp_path / "app").mkdir()
        (tmp_path / "app" / "layout.tsx").write_text(
            'import { cookies } from "next/headers";\n'
            "export default async function L({ children }: { children: React.ReactNode }) {\n"
            '  const theme = (await cookies()).get("theme");\n'
            "  return <html><body>{children}</body></html>;\n}\n"
        )
        files = {f.path: f.content for f in build(nextjs, "nextjs", tmp_path)}
        assert 'key: "Content-Security-Policy"' not in files["next.config.ts"]
        middleware = files["middleware.ts"]
        assert "'nonce-${nonce}' 'strict-dynamic'" in middleware and "x-nonce" in middleware
        assert "frame-ancestors 'none'" in middleware

    def test_new_files_only_with_write(self, nextjs: Spec, tmp_path: Path) -> None:
        """Without --write nothing is created; with it, everything is."""
        for file in build(nextjs, "nextjs", tmp_path):
            assert apply(file, tmp_path, write=False).state == "would-create"
            assert not (tmp_path / file.path).exists()
            assert apply(file, tmp_path, write=True).state == "created"
            assert (tmp_path / file.path).read_text() == file.content


class TestCli:
    def test_diff_then_write(self, tmp_path: Path) -> None:
        """`tower generate` exits 1 with a diff while files differ, 0 once written; `all`
        keeps a Dockerfile tower did not write, `generate dockerfile --write` replaces it."""
        _spec("python-asgi", tmp_path, stack="python-asgi")
        (tmp_path / "Dockerfile").write_text("FROM python:latest\n")

        def tower(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "controltower",
                    "generate",
                    *args,
                    "--spec",
                    str(tmp_path / "tower.toml"),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )

        shown = tower("dockerfile")
        assert shown.returncode == 1
        assert "-FROM python:latest" in shown.stdout and "--write" in shown.stdout
        assert (tmp_path / "Dockerfile").read_text() == "FROM python:latest\n"
        written = tower("all", "--write", "--env", "production", "--format", "json")
        assert written.returncode == 0
        states = {f["path"]: f["state"] for f in json.loads(written.stdout)["files"]}
        assert states["Dockerfile"] == "kept"  # yours: `all` never replaces it
        assert (tmp_path / "Dockerfile").read_text() == "FROM python:latest\n"
        assert tower("dockerfile", "--write").returncode == 0  # asked for by name: replaced
        assert "written by `tower generate dockerfile`" in (tmp_path / "Dockerfile").read_text()
        again = tower("all", "--env", "production", "--format", "json")
        assert again.returncode == 0, again.stdout
        states = {f["path"]: f["state"] for f in json.loads(again.stdout)["files"]}
        assert set(states.values()) == {"unchanged"}
        assert {
            "Dockerfile",
            ".dockerignore",
            ".github/workflows/tower.yml",
            ".env.example",
        } <= set(states)
        assert "fly.toml" not in states  # not a Fly app: no fly.toml

    def test_unknown_generator_is_bad_usage(self, tmp_path: Path) -> None:
        """`tower generate flytoml` exits 2, as the help says, and suggests fly-toml."""
        _spec("python-asgi", tmp_path, stack="python-asgi")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "controltower",
                "generate",
                "flytoml",
                "--spec",
                str(tmp_path / "tower.toml"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert "did you mean fly-toml?" in done.stderr


def test_python_stack_is_not_nextjs(python: Spec) -> None:
    assert python.service.stack is Stack.PYTHON_ASGI
    assert GeneratedFile("x", "y").merge_toml is False
