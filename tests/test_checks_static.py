"""Static checks: the plan-mistakes fixture fails with ids and fixes; a ready repo passes."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
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
        assert findings["docker.base_pinned"].hadolint == "DL3007"
        assert findings["docker.user"].hadolint == "DL3002"

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


HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
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
    def test_codes_match_hadolint(self, ready_repo: Path) -> None:
        """Where a check overlaps hadolint, hadolint reports the same code on the same line."""
        (ready_repo / "Dockerfile").write_text(MISTAKES_DOCKERFILE)
        text = (
            (ready_repo / "tower.toml").read_text().replace('target = "fly"', 'target = "docker"')
        )
        (ready_repo / "tower.toml").write_text(text)
        findings = {f.id: f for f in run_static(ready_repo).findings}
        ours: set[tuple[int, str]] = set()
        for finding in findings.values():
            if finding.status is not Status.FAIL or not finding.hadolint:
                continue
            lines = [
                int(d.split()[1].rstrip(":")) for d in finding.details if d.startswith("line ")
            ]
            lines = lines or [finding.location.line if finding.location else 1]
            for code in finding.hadolint.split(","):
                matching = [
                    line
                    for line, detail in zip(lines, finding.details, strict=False)
                    if code in detail
                ] or lines
                ours.add((matching[-1] if code in ("DL4003", "DL4004") else matching[0], code))
        done = subprocess.run(
            [HADOLINT, "--no-fail", "--format", "json", "--warning", "DL3057", "-"],
            input=MISTAKES_DOCKERFILE,
            capture_output=True,
            text=True,
            check=True,
        )
        theirs = {(item["line"], item["code"]) for item in json.loads(done.stdout)}
        assert {code for _, code in ours} == {
            "DL3002", "DL3006", "DL3007", "DL3025", "DL3057", "DL3064", "DL4003"
        }  # fmt: skip
        missing = {
            (line, code) for line, code in ours if (line, code) not in theirs and code != "DL3006"
        }
        assert missing == set(), (ours, theirs)
        # hadolint does not resolve ARG defaults in FROM; we do, and find the untagged image.
        assert "${BASE} (node): no tag (DL3006)" in findings["docker.base_pinned"].message
        assert [d.split(":")[0] for d in findings["docker.secrets"].details] == ["line 3", "line 4"]

    def test_healthcheck_code(self, ready_repo: Path) -> None:
        """A missing HEALTHCHECK carries hadolint's DL3057."""
        (ready_repo / "Dockerfile").write_text(
            GOOD_DOCKERFILE.replace("HEALTHCHECK", "# HEALTHCHECK")
        )
        finding = by_id(run_static(ready_repo))["docker.healthcheck"]
        assert finding.status is Status.ADVICE and finding.hadolint == "DL3057"  # type: ignore[attr-defined]

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
