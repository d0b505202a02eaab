"""Static checks: the plan-mistakes fixture fails with ids and fixes; a ready repo passes."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from controltower.checks import CheckContext, CheckRun, Status, run_checks, select
from controltower.checks.static.docker import parse
from controltower.checks.static.flyschema import problems, vm_memory_mb
from controltower.spec import load_spec

FIXTURE = Path(__file__).parent / "fixtures" / "plan_mistakes"

GOOD_FLY = """\
app = "shop"
primary_region = "ams"
kill_signal = "SIGTERM"
kill_timeout = "30s"

[deploy]
  release_command = "npx prisma migrate deploy"
  strategy = "rolling"

[http_service]
  internal_port = 3000
  force_https = true
  auto_stop_machines = "off"
  auto_start_machines = true
  min_machines_running = 2

  [http_service.concurrency]
    type = "requests"
    soft_limit = 200
    hard_limit = 250

  [[http_service.checks]]
    grace_period = "10s"
    interval = "15s"
    method = "GET"
    timeout = "2s"
    path = "/api/health"

[[vm]]
  memory = "1gb"
  cpu_kind = "shared"
  cpus = 1

[metrics]
  port = 3000
  path = "/metrics"
"""
GOOD_DOCKERFILE = """\
# syntax=docker/dockerfile:1
FROM node:22-slim AS build
WORKDIR /app
COPY . .
RUN npm ci && npm run build

FROM node:22-slim
ENV NODE_ENV=production \\
    NODE_OPTIONS="--max-old-space-size=768"
WORKDIR /app
COPY --from=build --chown=node:node /app/.next/standalone ./
USER node
HEALTHCHECK CMD ["wget", "-qO-", "http://127.0.0.1:3000/api/health/live"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "server.js"]
"""
GOOD_NEXT = """\
module.exports = {
  output: 'standalone',
  deploymentId: process.env.GIT_COMMIT_SHA,
  poweredByHeader: false,
  async headers() {
    return [{ source: '/(.*)', headers: [
      { key: 'Content-Security-Policy', value: "default-src 'self'" },
      { key: 'Strict-Transport-Security', value: 'max-age=63072000' },
    ] }];
  },
};
"""
GOOD_ENV = """\
DATABASE_URL=postgres://shop:shop@db.internal:5432/shop
NEXT_PUBLIC_POSTHOG_KEY=phc_fixture000000000000000
STRIPE_SECRET_KEY=sk_test_fixture0000000000000000
"""


def run_static(
    root: Path, env: str | None = None, environ: dict[str, str] | None = None
) -> CheckRun:
    spec = load_spec(root / "tower.toml", env=env)
    ctx = CheckContext(spec=spec, root=root, environment=env, environ=environ or {})
    return asyncio.run(run_checks(ctx, select(kinds=("static",))))


def by_id(run: CheckRun) -> dict[str, object]:
    return {f.id: f for f in run.findings}


@pytest.fixture
def ready_repo(tmp_path: Path) -> Path:
    shutil.copy(FIXTURE / "tower.toml", tmp_path / "tower.toml")
    (tmp_path / "fly.toml").write_text(GOOD_FLY)
    (tmp_path / "Dockerfile").write_text(GOOD_DOCKERFILE)
    (tmp_path / "next.config.js").write_text(GOOD_NEXT)
    (tmp_path / ".env").write_text(GOOD_ENV)
    return tmp_path


class TestPlanMistakes:
    MISTAKES = {
        "fly.release_command": "npm run build",
        "fly.concurrency": "soft_limit",
        "fly.memory": "256 MB",
        "fly.min_machines": "min_machines_running is 0",
        "docker.user": "root",
        "docker.base_pinned": "node:latest",
        "env.client_secret": "NEXT_PUBLIC_STRIPE_SECRET_KEY",
        "env.placeholder": "STRIPE_SECRET_KEY",
        "next.source_maps": "productionBrowserSourceMaps",
    }

    def test_every_mistake_reported_with_id_and_fix(self) -> None:
        """Each typical plan mistake fails under its own id, with a fix that shows lines to add."""
        findings = {f.id: f for f in run_static(FIXTURE).findings}
        for check_id, needle in self.MISTAKES.items():
            finding = findings[check_id]
            assert finding.status is Status.FAIL, (check_id, finding.message)
            assert needle in finding.message, (check_id, finding.message)
            assert finding.fix is not None and finding.fix.summary, check_id
        assert "release_command" in findings["fly.release_command"].fix.lines  # type: ignore[union-attr]
        assert "type = 'requests'" in findings["fly.concurrency"].fix.lines  # type: ignore[union-attr]
        assert findings["docker.user"].fix.lines == "USER node"  # type: ignore[union-attr]
        hadolint = findings["docker.hadolint"]
        assert ("DL3007", 1, "warning") in [(i.rule, i.line, i.level) for i in hadolint.items]  # type: ignore[attr-defined]
        assert findings["docker.user"].hadolint == findings["docker.base_pinned"].hadolint == ""

    def test_every_failure_shows_lines_to_change(self) -> None:
        """Every failing finding of the fixture, in any environment, has a fix with exact lines."""
        for env in (None, "staging", "production"):
            for finding in run_static(FIXTURE, env=env).findings:
                if finding.status in (Status.FAIL, Status.WARN, Status.ADVICE):
                    assert finding.fix is not None and finding.fix.summary, (env, finding.id)
                    assert finding.fix.lines.strip(), (env, finding.id)

    def test_no_client_prefixed_server_key_is_suggested(self) -> None:
        """The key-shape fix names the server-side variable, never NEXT_PUBLIC_ with a secret key."""
        finding = by_id(run_static(FIXTURE, env="production"))["env.key_shapes"]
        assert finding.fix.lines == "STRIPE_SECRET_KEY=sk_live_..."  # type: ignore[attr-defined]

    def test_gates_fail(self) -> None:
        """The mistakes fail gate 1 (release command, memory) and gate 2."""
        run = run_static(FIXTURE)
        assert not run.gates[1].passed and "fly.release_command" in run.gates[1].failing
        assert not run.gates[2].passed and "env.client_secret" in run.gates[2].failing
        assert run.score.overall is not None and run.score.overall < 50

    def test_no_secret_value_in_findings(self) -> None:
        """Findings name variables and key shapes, never the values."""
        text = repr([f.to_dict() for f in run_static(FIXTURE, env="production").findings])
        assert "sk_test_fixture0000000000000000" not in text
        assert "db.internal:5432" not in text

    def test_fly_advice_not_failure(self) -> None:
        """On Fly, no tini and no HEALTHCHECK are advice with the reason; NODE_ENV is advice for Next.js."""
        findings = by_id(run_static(FIXTURE))
        for check_id in ("docker.init", "docker.healthcheck", "docker.node_env"):
            finding = findings[check_id]
            assert finding.status is Status.ADVICE, check_id  # type: ignore[attr-defined]
            assert finding.advice_reason  # type: ignore[attr-defined]


class TestReadyRepo:
    def test_ready_repo_passes_every_gate(self, ready_repo: Path) -> None:
        """A repository with the fixes applied passes gates 1-3 in production."""
        (ready_repo / ".env.example").write_text(
            "DATABASE_URL=\nNEXT_PUBLIC_POSTHOG_KEY=\nSTRIPE_SECRET_KEY=\n"
        )
        run = run_static(ready_repo, env="staging")
        blocking = [(f.id, f.message) for f in run.findings if f.status.blocks]
        assert blocking == []
        assert all(v.passed for v in run.gates.values())

    def test_production_needs_two_machines_and_live_keys(self, ready_repo: Path) -> None:
        """In production a test Stripe key and auto-stopped machines fail."""
        (ready_repo / "fly.toml").write_text(
            GOOD_FLY.replace('"off"', '"stop"').replace(
                "min_machines_running = 2", "min_machines_running = 1"
            )
        )
        findings = by_id(run_static(ready_repo, env="production"))
        assert findings["env.key_shapes"].status is Status.FAIL  # type: ignore[attr-defined]
        assert findings["fly.auto_stop"].status is Status.FAIL  # type: ignore[attr-defined]
        assert "at least 2" in findings["fly.min_machines"].message  # type: ignore[attr-defined]

    def test_docker_target_fails_without_tini(self, ready_repo: Path) -> None:
        """On a plain Docker target, a missing init process is a failure, not advice."""
        text = (
            (ready_repo / "tower.toml").read_text().replace('target = "fly"', 'target = "docker"')
        )
        (ready_repo / "tower.toml").write_text(text)
        (ready_repo / "Dockerfile").write_text(
            GOOD_DOCKERFILE.replace('ENTRYPOINT ["/usr/bin/tini", "--"]\n', "")
        )
        findings = by_id(run_static(ready_repo))
        assert findings["docker.init"].status is Status.FAIL  # type: ignore[attr-defined]
        assert findings["fly.config"].status is Status.SKIP  # type: ignore[attr-defined]

    def test_docker_target_fails_without_a_dockerfile(self, ready_repo: Path) -> None:
        """With no Dockerfile, a Docker target fails gate 1; on Fly it is advice with the reason."""
        (ready_repo / "Dockerfile").unlink()
        fly = by_id(run_static(ready_repo))
        assert fly["docker.present"].status is Status.ADVICE  # type: ignore[attr-defined]
        assert "prebuilt image" in fly["docker.present"].advice_reason  # type: ignore[attr-defined]
        text = (
            (ready_repo / "tower.toml").read_text().replace('target = "fly"', 'target = "docker"')
        )
        (ready_repo / "tower.toml").write_text(text)
        run = run_static(ready_repo)
        finding = by_id(run)["docker.present"]
        assert finding.status is Status.FAIL  # type: ignore[attr-defined]
        assert "tower generate dockerfile --write" in str(finding.to_dict())  # type: ignore[attr-defined]
        assert not run.gates[1].passed
        (ready_repo / "Dockerfile").write_text(GOOD_DOCKERFILE)
        assert by_id(run_static(ready_repo))["docker.present"].status is Status.PASS  # type: ignore[attr-defined]


class TestGeneratedFiles:
    def test_tower_generate_output_passes(self, tmp_path: Path) -> None:
        """The files `tower generate all` writes for a Next.js app on Fly pass every static check."""
        from controltower.generate import build

        text = (FIXTURE / "tower.toml").read_text().replace('memory = "512mb"', 'memory = "1gb"')
        (tmp_path / "tower.toml").write_text(text)
        (tmp_path / "prisma").mkdir()
        (tmp_path / "prisma" / "schema.prisma").write_text("")
        spec = load_spec(tmp_path / "tower.toml", env="production")
        for generated in build(spec, "all", tmp_path):
            target = tmp_path / generated.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(generated.content)
        (tmp_path / ".env").write_text(
            "DATABASE_URL=postgres://shop:pw@db.internal:5432/shop\n"
            "NEXT_PUBLIC_POSTHOG_KEY=phc_fixture000000000000000\n"
            "STRIPE_SECRET_KEY=sk_live_fixture0000000000000000\n"
        )
        run = run_static(tmp_path, env="production")
        assert [(f.id, f.message) for f in run.findings if f.status.blocks] == []
        assert all(v.passed for v in run.gates.values())


class TestFlySchema:
    def test_unknown_and_mistyped_keys(self) -> None:
        """Unknown keys and wrong types are reported with their key path."""
        found = problems(
            {
                "app": "x",
                "kill_signal": "SIGFOO",
                "http_service": {
                    "internal_port": "80",
                    "concurrency": {"type": "sessions"},
                    "autostop": True,
                },
                "deploy": {"strategy": "yolo"},
                "vm": [{"memory": "lots"}],
            }
        )
        joined = "\n".join(found)
        for needle in (
            "kill_signal",
            "http_service.internal_port",
            "http_service.concurrency.type",
            "http_service.autostop: not a fly.toml key",
            "deploy.strategy",
            "vm[0].memory",
        ):
            assert needle in joined, needle

    def test_vm_memory(self) -> None:
        """Memory comes from memory, memory_mb or the size preset; Fly's default is 256 MB."""
        assert vm_memory_mb({}) == 256
        assert vm_memory_mb({"vm": [{"memory": "1gb"}]}) == 1024
        assert vm_memory_mb({"vm": [{"memory": 2048}]}) == 2048
        assert vm_memory_mb({"vm": [{"memory_mb": 512}]}) == 512
        assert vm_memory_mb({"vm": [{"size": "shared-cpu-2x"}]}) == 512

    def test_unparseable_fly_toml(self, ready_repo: Path) -> None:
        """A fly.toml that is not TOML fails fly.config with the parser's message."""
        (ready_repo / "fly.toml").write_text("app = \n")
        finding = by_id(run_static(ready_repo))["fly.config"]
        assert finding.status is Status.FAIL and "not valid TOML" in finding.message  # type: ignore[attr-defined]


class TestDockerfile:
    def test_parse_joins_continuations_and_stages(self) -> None:
        """Instructions keep their first line; continuation lines join; stages count FROMs."""
        instructions = parse(GOOD_DOCKERFILE)
        env = next(i for i in instructions if i.keyword == "ENV")
        assert env.line == 8 and "max-old-space-size=768" in env.args
        assert {i.stage for i in instructions} == {0, 1}

    def test_secrets_in_env(self, ready_repo: Path) -> None:
        """A secret-named ENV or ARG fails docker.secrets at its line."""
        (ready_repo / "Dockerfile").write_text(
            GOOD_DOCKERFILE.replace(
                "WORKDIR /app\nCOPY .", "ARG NPM_TOKEN\nWORKDIR /app\nCOPY .", 1
            )
        )
        finding = by_id(run_static(ready_repo))["docker.secrets"]
        assert finding.status is Status.FAIL and "NPM_TOKEN" in finding.message  # type: ignore[attr-defined]
        assert finding.location.line == 3  # type: ignore[attr-defined]

    def test_heap_larger_than_vm(self, ready_repo: Path) -> None:
        """A heap limit above the VM memory fails."""
        (ready_repo / "Dockerfile").write_text(GOOD_DOCKERFILE.replace("768", "4096"))
        finding = by_id(run_static(ready_repo))["docker.node_heap"]
        assert finding.status is Status.FAIL  # type: ignore[attr-defined]


MISTAKES_DOCKERFILE = """\
ARG BASE=node
FROM ${BASE} AS build
ARG NPM_TOKEN
ENV API_KEY=abc123
RUN npm ci
FROM node:latest
ENV NODE_ENV production
USER root
CMD npm start
CMD node server.js
"""


class TestDockerfileRules:
    def test_tower_rules_beside_hadolint(self, ready_repo: Path) -> None:
        """hadolint's findings come with hadolint's codes; tower's own ids carry none, and
        resolve what hadolint does not (ARG defaults in FROM)."""
        (ready_repo / "Dockerfile").write_text(MISTAKES_DOCKERFILE)
        text = (
            (ready_repo / "tower.toml").read_text().replace('target = "fly"', 'target = "docker"')
        )
        (ready_repo / "tower.toml").write_text(text)
        findings = {f.id: f for f in run_static(ready_repo).findings}
        codes = {(i.rule, i.line) for i in findings["docker.hadolint"].items}
        assert {("DL3002", 8), ("DL3007", 6), ("DL3025", 9), ("DL4003", 10), ("DL3064", 3)} <= codes
        assert not any(f.hadolint for f in findings.values())
        # hadolint does not resolve ARG defaults in FROM; tower does, and finds the untagged image.
        assert "${BASE} (node): no tag" in findings["docker.base_pinned"].message
        assert [d.split(":")[0] for d in findings["docker.secrets"].details] == ["line 3", "line 4"]

    def test_healthcheck_is_tower_advice(self, ready_repo: Path) -> None:
        """A missing HEALTHCHECK is tower's own advice on Fly, with no hadolint code."""
        (ready_repo / "Dockerfile").write_text(
            GOOD_DOCKERFILE.replace("HEALTHCHECK", "# HEALTHCHECK")
        )
        finding = by_id(run_static(ready_repo))["docker.healthcheck"]
        assert finding.status is Status.ADVICE and finding.hadolint == ""  # type: ignore[attr-defined]

    def test_heredoc_bodies_are_not_instructions(self) -> None:
        """Lines inside a RUN heredoc are part of the RUN, not instructions of their own."""
        instructions = parse("FROM node:22\nRUN <<EOF\nFROM evil\nUSER root\nEOF\nUSER node\n")
        assert [i.keyword for i in instructions] == ["FROM", "RUN", "USER"]
        assert instructions[-1].line == 6

    def test_heap_from_fly_env(self, ready_repo: Path) -> None:
        """NODE_OPTIONS in fly.toml [env] counts, and is judged against the fly.toml VM."""
        (ready_repo / "Dockerfile").write_text(GOOD_DOCKERFILE.replace("768", "700"))
        (ready_repo / "fly.toml").write_text(
            GOOD_FLY.replace(
                "[metrics]", '[env]\n  NODE_OPTIONS = "--max-old-space-size=1000"\n\n[metrics]'
            )
        )
        finding = by_id(run_static(ready_repo))["docker.node_heap"]
        assert finding.status is Status.FAIL  # type: ignore[attr-defined]
        assert "1000 is above 85% of the VM's 1024 MB" in finding.message  # type: ignore[attr-defined]
        assert finding.location.file == "fly.toml"  # type: ignore[attr-defined]


class TestNextConfig:
    def test_headers_in_middleware_or_proxy(self, ready_repo: Path) -> None:
        """Security headers set in middleware (or Next 16's proxy) count like headers() in the config."""
        (ready_repo / "next.config.js").unlink()
        (ready_repo / "next.config.ts").write_text(
            "const config = { output: 'standalone', poweredByHeader: false };\nexport default config;\n"
        )
        assert by_id(run_static(ready_repo))["next.security_headers"].status is Status.FAIL  # type: ignore[attr-defined]
        for name in ("middleware.ts", "src/proxy.ts"):
            path = ready_repo / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(
                "export function proxy(req) {\n  const res = NextResponse.next();\n"
                "  res.headers.set('Content-Security-Policy', \"default-src 'self'\");\n"
                "  res.headers.set('Strict-Transport-Security', 'max-age=63072000');\n  return res;\n}\n"
            )
            finding = by_id(run_static(ready_repo))["next.security_headers"]
            assert finding.status is Status.PASS, (name, finding.message)  # type: ignore[attr-defined]
            path.unlink()

    def test_commented_out_settings_do_not_count(self, ready_repo: Path) -> None:
        """A commented-out poweredByHeader: false does not pass; source maps in a comment do not fail."""
        (ready_repo / "next.config.js").write_text(
            GOOD_NEXT.replace("poweredByHeader: false,", "// poweredByHeader: false,").replace(
                "output:", "/* productionBrowserSourceMaps: true, */ output:"
            )
        )
        findings = by_id(run_static(ready_repo))
        assert findings["next.powered_by"].status is Status.FAIL  # type: ignore[attr-defined]
        assert findings["next.source_maps"].status is Status.PASS  # type: ignore[attr-defined]


class TestFlySecrets:
    def test_secrets_in_fly_env_and_build_args(self, ready_repo: Path) -> None:
        """Secrets committed in fly.toml [env] or [build.args] fail gate 1; no value is shown."""
        (ready_repo / "fly.toml").write_text(
            GOOD_FLY.replace(
                "[metrics]",
                '[env]\n  NODE_ENV = "production"\n  PAYMENT_KEY = "sk_live_abc123"\n'
                '  DATABASE_URL = "postgres://shop:hunter2@db/shop"\n\n'
                '[build.args]\n  NPM_TOKEN = "npm_abc"\n\n[metrics]',
            )
        )
        run = run_static(ready_repo)
        finding = by_id(run)["fly.env_secrets"]
        assert finding.status is Status.FAIL  # type: ignore[attr-defined]
        assert finding.details == (  # type: ignore[attr-defined]
            "[env] PAYMENT_KEY",
            "[env] DATABASE_URL",
            "[build.args] NPM_TOKEN",
        )
        assert "fly.env_secrets" in run.gates[1].failing
        text = repr(finding)
        assert "sk_live_abc123" not in text and "hunter2" not in text and "npm_abc" not in text
        assert "fly secrets set PAYMENT_KEY=<value>" in finding.fix.lines  # type: ignore[attr-defined]
