"""`tower init && tower generate all --write` on a corpus of real-looking repositories.

Each repository in tests/fixtures/repos is copied, initialised and generated for, then:
the env catalog lists exactly the variables the repository uses (a hand-made list); every
generated Dockerfile passes the real hadolint; the Dockerfile's CMD, run from the repository's
folder without Docker, serves the health route; `tower check --static --gate 2` passes; every
value of the user's own files that no check required to change is byte-identical; the
workflow is valid against SchemaStore's GitHub Actions schema and deploys with the platform's
driver.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from controltower.cli.main import run
from tests.conftest import free_port
from tests.nextjs_support import NextBuild, copy_fixture, slow_build

REPOS = Path(__file__).parent / "fixtures" / "repos"
SCHEMA = Path(__file__).parent / "fixtures" / "schemas" / "github-workflow.json"
BIN = Path(sys.executable).parent
HADOLINT = shutil.which("hadolint") or str(BIN / "hadolint")

# Values of the right shape for every variable the corpus uses: the gate judges the
# generated files, so the environment itself must be in order (CI passes secrets the same way).
ENVIRONMENT = {
    "APP_VERSION": "1.0.0",
    "DATABASE_URL": "postgresql://app:Vq8rT2mZk4LpX7wN@db.internal:5432/app",
    "SENTRY_DSN": "https://0123456789abcdef@o1.ingest.sentry.io/1",
    "STRIPE_SECRET_KEY": "sk_live_51Hq8rT2mZk4LpX7wNb3Yc9dF",
    "STRIPE_WEBHOOK_SECRET": "whsec_Hq8rT2mZk4LpX7wNb3Yc9dF1gH",
    "ASSETS_BUCKET": "catalog-assets",
    "SEARCH_URL": "https://search.example.com",
    "FLASK_SECRET_KEY": "Hq8rT2mZk4LpX7wNb3Yc9dF1gHq8rT2m",
    "RESEND_API_KEY": "re_Hq8rT2mZ_k4LpX7wNb3Yc9dF1",
    "WIKI_SECRET_KEY": "Vq8rT2mZk4LpX7wNb3Yc9dF1gHq8rT2m",
    "DJANGO_SECRET_KEY": "Vq8rT2mZk4LpX7wNb3Yc9dF1gHq8rT2mZk4LpX7wN",
    "DJANGO_DEBUG": "0",
    "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
    "LOG_LEVEL": "info",
    "NEXT_PUBLIC_SITE_URL": "https://shop.example.com",
    "NEXT_PUBLIC_POSTHOG_KEY": "phc_Hq8rT2mZk4LpX7wNb3Yc9dF1gH",
    "NEXT_PUBLIC_POSTHOG_HOST": "https://eu.i.posthog.com",
    "NEXT_PUBLIC_SUPABASE_URL": "https://qwertyuiopasdfghjklz.supabase.co",
    "NEXT_PUBLIC_SUPABASE_ANON_KEY": "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlMQ",
    "SUPABASE_SERVICE_ROLE_KEY": "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZSJ9.c2lnbmF0dXJlMg",
    "QUEUE_URL": "redis://queue.internal:6379/0",
    "DIGEST_BATCH_SIZE": "50",
    "RELAY_TOKEN": "Hq8rT2mZk4LpX7wNb3Yc9dF1gHq8rT2m",
    "CONTACT_FROM": "hello@example.com",
}


@dataclass(frozen=True)
class Repo:
    env: frozenset[str]
    """The variables the repository uses, listed by hand from its code and .env files."""
    target: str
    driver: str
    stack: str
    entrypoint: str
    dockerfile: bool = True
    runs: bool = False
    """A Python app: the generated CMD is started here and its health route must answer 200."""
    changed_lines: frozenset[str] = frozenset()
    """Lines of the user's fly.toml a failing check requires to change (all others stay)."""
    may_change: frozenset[str] = field(default_factory=frozenset)
    """User files another generator owns (the Next.js files)."""


NEXT_FILES = frozenset({"next.config.js", "next.config.mjs", "next.config.ts"})
CORPUS = {
    "fastapi-main": Repo(
        frozenset({"APP_VERSION", "DATABASE_URL", "SENTRY_DSN", "STRIPE_SECRET_KEY"}),
        "unknown", "exec", "python-asgi", "main:app", runs=True,
    ),
    "fastapi-package": Repo(
        frozenset({"APP_VERSION", "ASSETS_BUCKET", "SEARCH_URL"}),
        "kubernetes", "exec", "python-asgi", "app.main:app", runs=True,
    ),
    "flask": Repo(
        frozenset({"APP_VERSION", "FLASK_SECRET_KEY", "RESEND_API_KEY"}),
        "other", "exec", "python-wsgi", "app:app", runs=True,
    ),
    "flask-factory": Repo(
        frozenset({"APP_VERSION", "WIKI_SECRET_KEY"}),
        "unknown", "exec", "python-wsgi", "wsgi:application", runs=True,
    ),
    "django": Repo(
        frozenset({"APP_VERSION", "DJANGO_ALLOWED_HOSTS", "DJANGO_DEBUG", "DJANGO_SECRET_KEY"}),
        "fly", "fly", "python-wsgi", "mysite.wsgi:application", runs=True,
        changed_lines=frozenset({"  min_machines_running = 0", "  auto_stop_machines = 'stop'"}),
    ),
    "python-worker": Repo(
        frozenset({"DIGEST_BATCH_SIZE", "QUEUE_URL"}),
        "other", "exec", "python-worker", "python worker.py", runs=True,
    ),
    "starlette-fly": Repo(
        frozenset({"APP_VERSION", "RELAY_TOKEN"}),
        "fly", "fly", "python-asgi", "server:app", runs=True,
        changed_lines=frozenset({'  min_machines_running = 0', '  auto_stop_machines = "stop"'}),
    ),
    "fly-fra-secret": Repo(
        frozenset({"APP_VERSION", "LOG_LEVEL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"}),
        "fly", "fly", "python-asgi", "api.main:app", runs=True,
        changed_lines=frozenset(
            {
                '  release_command = "make build"',
                '  STRIPE_SECRET_KEY = "sk_live_51Hq8rT2mZk4LpX7wNb3Yc9dF"',
                '  memory = "256mb"',
            }
        ),
    ),
    "nextjs-js": Repo(
        frozenset({"APP_VERSION", "NEXT_PUBLIC_SITE_URL", "STRIPE_SECRET_KEY"}),
        "fly", "fly", "nextjs", "next start", may_change=NEXT_FILES,
    ),
    "nextjs-ts": Repo(
        frozenset(
            {"APP_VERSION", "NEXT_PUBLIC_SUPABASE_ANON_KEY", "NEXT_PUBLIC_SUPABASE_URL",
             "SUPABASE_SERVICE_ROLE_KEY"}
        ),
        "unknown", "exec", "nextjs", "next start", may_change=NEXT_FILES,
    ),
    "nextjs-standalone": Repo(
        frozenset({"APP_VERSION", "NEXT_PUBLIC_POSTHOG_HOST", "NEXT_PUBLIC_POSTHOG_KEY"}),
        "fly", "fly", "nextjs", "node server.js", may_change=NEXT_FILES,
    ),
    "vercel-next": Repo(
        frozenset({"APP_VERSION", "CONTACT_FROM", "RESEND_API_KEY"}),
        "vercel", "vercel", "nextjs", "next start", dockerfile=False, may_change=NEXT_FILES,
    ),
}  # fmt: skip


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def tower(folder: Path, *args: str) -> Done:
    """``tower *args`` in this process through its real entry point, from ``folder``, with
    ENVIRONMENT set and no TOWER_* variable (quicker than a subprocess, same exit codes)."""
    saved_environ, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        for name in [n for n in os.environ if n.startswith("TOWER_")]:
            del os.environ[name]
        os.environ.update(ENVIRONMENT)
        os.chdir(folder)
        sys.argv = ["tower", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
    return Done(code, out.getvalue(), err.getvalue())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@dataclass
class Generated:
    name: str
    repo: Repo
    folder: Path
    before: dict[str, bytes]
    init: dict[str, Any]
    generated: dict[str, Any]
    spec: dict[str, Any]


_CACHE: dict[str, Generated] = {}


def generated(name: str, tmp_root: Path) -> Generated:
    """The repository copied, `tower init` and `tower generate all --write` run once per test run."""
    if name in _CACHE:
        return _CACHE[name]
    folder = tmp_root / name
    shutil.copytree(REPOS / name, folder)
    before = _snapshot(folder)
    init = tower(folder, "init", ".", "--format", "json")
    assert init.returncode == 0, init.stderr
    done = tower(folder, "generate", "all", "--write", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    spec = tomllib.loads((folder / "tower.toml").read_text())
    result = Generated(
        name, CORPUS[name], folder, before, json.loads(init.stdout), json.loads(done.stdout), spec
    )
    _CACHE[name] = result
    return result


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


NAMES = sorted(CORPUS)
PYTHON = sorted(name for name, repo in CORPUS.items() if repo.runs)


def test_the_corpus_is_the_fixtures_folder() -> None:
    """Every repository in tests/fixtures/repos is in the corpus, and there are at least 12."""
    folders = {p.name for p in REPOS.iterdir() if p.is_dir()}
    assert folders == set(CORPUS) and len(CORPUS) >= 12


@pytest.mark.parametrize("name", NAMES)
class TestInit:
    def test_env_catalog_is_what_the_repo_uses(self, name: str, corpus_root: Path) -> None:
        """`tower init` lists exactly the env variables the code and .env files use, and
        tower.toml's catalog holds exactly those."""
        result = generated(name, corpus_root)
        listed = {use["name"] for use in result.init["env_vars"]}
        assert listed == result.repo.env
        assert set(result.spec["env"]["vars"]) == result.repo.env

    def test_stack_entry_point_platform_and_driver(self, name: str, corpus_root: Path) -> None:
        """Stack, entry point, platform (unknown when nothing says) and the driver that fits,
        the same in the JSON report and in tower.toml."""
        result = generated(name, corpus_root)
        repo, service = result.repo, result.spec["service"]
        assert (service["stack"], service["entrypoint"]) == (repo.stack, repo.entrypoint)
        assert (service["target"], result.spec["deploy"]["driver"]) == (repo.target, repo.driver)
        assert (result.init["target"], result.init["driver"]) == (repo.target, repo.driver)


@pytest.mark.parametrize("name", NAMES)
class TestGenerate:
    def test_hadolint_finds_nothing(self, name: str, corpus_root: Path) -> None:
        """The real hadolint reports no error, warning, info or style issue on the Dockerfile."""
        result = generated(name, corpus_root)
        dockerfile = result.folder / "Dockerfile"
        if not result.repo.dockerfile:
            assert not dockerfile.exists()  # Vercel builds the app itself
            return
        assert (result.folder / ".dockerignore").is_file()
        done = subprocess.run(
            [HADOLINT, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and done.stdout == "", done.stdout

    def test_static_gate_passes(self, name: str, corpus_root: Path) -> None:
        """`tower check --static --gate 2 --env production` passes on the generated files."""
        result = generated(name, corpus_root)
        done = tower(
            result.folder, "check", "--static", "--gate", "2", "--env", "production",
            "--no-store", "--format", "json",
        )  # fmt: skip
        report = json.loads(done.stdout)
        failing = [f["id"] for f in report["findings"] if f["status"] in ("fail", "error")]
        gates = {g: v["failing"] for g, v in report["gates"].items() if g in ("1", "2")}
        if result.repo.stack == "nextjs":
            # The Next.js files (next.config, headers) belong to `tower generate nextjs`:
            # judged in tests/test_generate_nextjs*.py; every other check must pass here.
            gates = {g: [i for i in ids if not i.startswith("next.")] for g, ids in gates.items()}
        assert gates == {"1": [], "2": []}, (failing, done.stderr)

    def test_user_values_are_kept(self, name: str, corpus_root: Path) -> None:
        """Every user file is byte-identical after generating, except lines a failing check
        required to change; .env.example and .dockerignore are only appended to."""
        result = generated(name, corpus_root)
        after = _snapshot(result.folder)
        for path, content in result.before.items():
            if path in result.repo.may_change:
                continue
            new = after[path]
            if path == "fly.toml":
                lines = set(new.decode().splitlines())
                kept = [
                    line
                    for line in content.decode().splitlines()
                    if line not in result.repo.changed_lines
                ]
                assert [line for line in kept if line not in lines] == []
                for line in result.repo.changed_lines:
                    assert line not in lines
            elif path in (".env.example", ".dockerignore"):
                assert new.startswith(content)
            else:
                assert new == content, path

    def test_no_secret_is_copied(self, name: str, corpus_root: Path) -> None:
        """A secret found in fly.toml [env] is moved out: not in any generated file or in the
        output, and the `fly secrets set` command is printed."""
        result = generated(name, corpus_root)
        secret = ENVIRONMENT["STRIPE_SECRET_KEY"]
        for path, content in _snapshot(result.folder).items():
            if path not in result.before:
                assert secret.encode() not in content, path
        if name == "fly-fra-secret":
            assert secret.encode() not in (result.folder / "fly.toml").read_bytes()
            notes = [n for f in result.generated["files"] for n in f["notes"]]
            assert any(
                "fly secrets set STRIPE_SECRET_KEY=<value> -a billing-eu" in n for n in notes
            )
            data = tomllib.loads((result.folder / "fly.toml").read_text())
            assert data["primary_region"] == "fra" and data["kill_signal"] == "SIGINT"
            assert data["vm"][0]["memory"] == "512mb"
            assert data["deploy"]["release_command"] == "alembic upgrade head"

    def test_workflow_is_valid_and_uses_the_driver(self, name: str, corpus_root: Path) -> None:
        """The workflow validates against SchemaStore's GitHub Actions schema; the gate is
        static and uploads SARIF; tower is pinned; the deploy job uses the platform's driver."""
        from controltower import __version__

        result = generated(name, corpus_root)
        text = (result.folder / ".github" / "workflows" / "tower.yml").read_text()
        workflow = yaml.safe_load(text)
        if True in workflow:  # YAML 1.1 reads the key `on` as a boolean
            workflow["on"] = workflow.pop(True)
        jsonschema.validate(workflow, json.loads(SCHEMA.read_text()))
        gate = workflow["jobs"]["gate"]["steps"]
        runs = [step.get("run", "") for step in gate]
        assert any(r.startswith("tower check --static --gate 2") for r in runs)
        assert any(
            step.get("uses", "").startswith("github/codeql-action/upload-sarif") for step in gate
        )
        assert f'"controltower=={__version__}"' in text and "pip install controltower\n" not in text
        deploy = [step.get("run", "") for step in workflow["jobs"]["deploy"]["steps"]]
        if result.repo.driver == "fly":
            assert any("flyctl deploy --build-only --push" in r for r in deploy)
            assert any(r.startswith("tower deploy --image") for r in deploy)
        else:
            assert any(r.startswith("tower deploy") and "--image" not in r for r in deploy)
            assert not any("flyctl" in r for r in deploy)


def _cmd(folder: Path) -> list[str]:
    for line in (folder / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            command: list[str] = json.loads(line[4:])
            return command
    raise AssertionError("no CMD")


@pytest.mark.parametrize("name", PYTHON)
def test_generated_cmd_serves_the_health_route(name: str, corpus_root: Path) -> None:
    """The Dockerfile's CMD, run from the repository's folder without Docker (the image's
    PATH is the venv), starts the app, and its readiness route answers 200."""
    result = generated(name, corpus_root)
    port = free_port()
    image_port = str(result.spec["service"]["port"])
    command = [
        part.replace(f"0.0.0.0:{image_port}", f"127.0.0.1:{port}").replace("0.0.0.0", "127.0.0.1")
        for part in _cmd(result.folder)
    ]
    command = [str(port) if part == image_port else part for part in command]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
    environ.update(ENVIRONMENT)
    environ.update(PORT=str(port), PATH=f"{BIN}{os.pathsep}{environ.get('PATH', '')}")
    environ.pop("PYTHONPATH", None)
    path = result.spec["health"]["readiness"]
    _serves(command, result.folder, environ, f"http://127.0.0.1:{port}{path}")


def _serves(command: list[str], cwd: Path, environ: dict[str, str], url: str) -> None:
    """Start ``command`` in ``cwd``; ``url`` must answer 200 within a minute."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline, status = time.monotonic() + 60, 0
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = httpx.get(url, timeout=2).status_code
                if status == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert status == 200, (command, process.poll())
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr:
            process.stderr.close()


@slow_build
def test_generated_cmd_serves_the_shared_nextjs_app(next_app: NextBuild, tmp_path: Path) -> None:
    """The shared Next.js fixture (next 15, no standalone output, built once per run):
    `tower init && tower generate dockerfile` on its sources writes a hadolint-clean
    Dockerfile whose CMD is `next start`; run from the built app's folder without Docker,
    it serves /api/health with 200."""
    folder = copy_fixture(tmp_path / "app")
    assert tower(folder, "init", ".").returncode == 0
    done = tower(folder, "generate", "dockerfile", "--write")
    assert done.returncode == 0, done.stdout + done.stderr
    text = (folder / "Dockerfile").read_text()
    assert "COPY --from=build --chown=1000:1000 /app/public" not in text  # it has no public/
    lint = subprocess.run(
        [HADOLINT, "--no-color", str(folder / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0 and lint.stdout == "", lint.stdout
    command = _cmd(folder)
    assert command[:2] == ["node_modules/.bin/next", "start"]
    port = free_port()
    command = [str(port) if part == "3000" else part for part in command]
    command = ["127.0.0.1" if part == "0.0.0.0" else part for part in command]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
    environ.update(NODE_ENV="production", PORT=str(port), NEXT_TELEMETRY_DISABLED="1")
    _serves(command, next_app.folder, environ, f"http://127.0.0.1:{port}/api/health")
