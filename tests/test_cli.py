"""The ``tower`` command: root options, help of every command, ``validate`` and ``init``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from controltower import __version__
from controltower.cli.common import HELP_SECTIONS
from controltower.cli.main import app, run
from controltower.spec import parse_spec
from controltower.spec.detect import Detected, detect
from controltower.spec.presets import PRESETS, render

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SPEC = ROOT / "examples" / "app" / "tower.toml"
NEXTJS_CATALOG = (
    "NEXT_PUBLIC_SITE_URL",
    "NEXT_PUBLIC_SUPABASE_URL",
    "NEXT_PUBLIC_SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_DB_PASSWORD",
    "SUPABASE_PROJECT_ID",
    "NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "RESEND_API_KEY",
    "NEXT_PUBLIC_POSTHOG_KEY",
    "NEXT_PUBLIC_POSTHOG_HOST",
    "POSTHOG_PROJECT_API_KEY",
    "POSTHOG_PERSONAL_API_KEY",
    "NODE_ENV",
    "LOG_LEVEL",
)


def tower(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``tower`` entry point in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "controltower", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``tower`` in this process through its real entry point (``run``): quicker than a
    subprocess, same parsing, error handling and exit codes."""

    def invoke(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        if env is not None:
            for name in list(os.environ):
                monkeypatch.delenv(name)
            for name, value in env.items():
                monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "argv", ["tower", *args])
        capsys.readouterr()
        code: int = 0
        try:
            run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def commands() -> Iterator[tuple[str, Any]]:
    """Every runnable command registered on ``tower``, as (``"deploy promote"``, command)."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        if not hasattr(command, "list_commands"):
            yield " ".join(path), command
            return
        with command.context_class(command) as ctx:
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), (*path, name))

    yield from walk(typer.main.get_command(app), ())


COMMANDS = sorted(commands(), key=lambda item: item[0])


class TestRoot:
    def test_command_table_matches_the_modules(self) -> None:
        """Each command module registers exactly the commands the lazy table maps to it."""
        import importlib

        from controltower.cli.main import COMMAND_MODULES

        for module in set(COMMAND_MODULES.values()):
            holder = typer.Typer()
            importlib.import_module(f"controltower.cli.{module}").register(holder)
            registered = set(typer.main.get_group(holder).commands)
            assert registered == {n for n, m in COMMAND_MODULES.items() if m == module}, module

    def test_version_loads_no_command_module(self) -> None:
        """``tower --version`` answers without importing any command module."""
        code = (
            "import sys\n"
            "from controltower.cli.main import app\n"
            "try:\n    app(['--version'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('controltower.cli.')))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert (
            done.stdout.strip().splitlines()[-1]
            == "['controltower.cli.common', 'controltower.cli.main']"
        )

    def test_version(self) -> None:
        """``tower --version`` prints the package version and exits 0."""
        result = tower("--version")
        assert result.returncode == 0
        assert result.stdout.strip() == f"tower {__version__}"

    def test_help_lists_every_command_under_its_verb(self) -> None:
        """``tower --help`` lists each command group under Start, Check, Ship, Watch, ..."""
        result = tower("--help")
        assert result.returncode == 0
        text = result.stdout
        sections = [f"{name}:" for name in HELP_SECTIONS if f"\n{name}:\n" in text]
        assert sections[:4] == ["Start:", "Check:", "Ship:", "Watch:"]
        assert text.index("\nStart:\n") < text.index("  init ") < text.index("\nCheck:\n")
        assert text.index("\nShip:\n") < text.index("  deploy ") < text.index("\nWatch:\n")
        top = {name.split()[0] for name, _ in COMMANDS}
        for name in top:
            assert f"\n  {name} " in text, f"{name} is missing from tower --help"

    def test_unknown_command_is_usage_error(self) -> None:
        """An unknown command exits 2, like every usage error."""
        assert tower("frobnicate").returncode == 2

    def test_tower_error_is_a_message_not_a_traceback(self, tmp_path: Path) -> None:
        """A TowerError prints ``error: ...`` on stderr with its exit code, never a traceback."""
        result = tower("init", str(tmp_path / "missing"))
        assert result.returncode == 2
        assert result.stderr.startswith("error: ")
        assert "Traceback" not in result.stderr


class TestEveryCommand:
    def test_there_are_commands(self) -> None:
        """The walk finds the foundation's commands and the nested ones."""
        names = {name for name, _ in COMMANDS}
        assert {"init", "validate", "deploy promote"} <= names

    @pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
    def test_help_has_examples_and_exit_codes(self, name: str, command: Any) -> None:
        """Every command's --help ends with examples (``$ tower ...``) and documented exit codes."""
        epilog = command.epilog or ""
        assert "Examples:" in epilog, f"tower {name}: no examples in --help"
        assert f"$ tower {name.split()[0]}" in epilog, f"tower {name}: examples do not run tower"
        assert "Exit codes:" in epilog and "0 " in epilog.split("Exit codes:")[1]
        result = CliRunner().invoke(app, [*name.split(), "--help"])
        assert result.exit_code == 0, result.output
        assert "Examples:" in result.output and "Exit codes:" in result.output

    @pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
    def test_speaks_json(self, name: str, command: Any) -> None:
        """Every command takes ``--format json``, for machines."""
        assert any("--format" in getattr(p, "opts", []) for p in command.params), name
        result = CliRunner().invoke(app, [*name.split(), "--format", "no-such-format"])
        assert result.exit_code == 2 and "json" in result.output, result.output


class TestValidate:
    def test_valid_prints_one_line_summary(self, cli: Cli) -> None:
        """A valid spec gives exactly one summary line and exit 0."""
        result = cli("validate", "--spec", str(EXAMPLE_SPEC))
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1
        assert lines[0] == (
            f"{EXAMPLE_SPEC}: valid: service example (python-asgi on local), 1 environment, "
            "8 env vars, 2 monitors, deploy canary via local"
        )

    def test_invalid_exits_2_with_every_error(self, cli: Cli, tmp_path: Path) -> None:
        """Every error is printed with file and line, then a count; exit 2."""
        spec = tmp_path / "tower.toml"
        spec.write_text('[service]\nname = "x"\nport = "a"\n[deploy]\nstrategy = "blue-green"\n')
        result = cli("validate", "--spec", str(spec))
        assert result.returncode == 2
        assert result.stdout.splitlines() == [
            f'{spec}:3: service.port: must be a whole number (got "a")',
            f"{spec}:5: deploy.strategy: must be one of immediate, rolling, bluegreen, canary "
            '(got "blue-green")',
            "2 errors",
        ]

    def test_json(self, cli: Cli, tmp_path: Path) -> None:
        """--format json gives the errors as objects with file, line, path and message."""
        spec = tmp_path / "tower.toml"
        spec.write_text('[service]\nname = "x"\nport = 0\n')
        result = cli("validate", "--spec", str(spec), "--format", "json")
        assert result.returncode == 2
        data = json.loads(result.stdout)
        assert data == {
            "valid": False,
            "errors": [
                {
                    "file": str(spec),
                    "line": 3,
                    "path": "service.port",
                    "message": "must be at least 1 (got 0)",
                }
            ],
        }

    def test_json_valid(self, cli: Cli) -> None:
        """--format json on a valid spec says so, with the summary."""
        result = cli("validate", "--spec", str(EXAMPLE_SPEC), "--format", "json", "--env", "local")
        data = json.loads(result.stdout)
        assert data["valid"] is True and data["environment"] == "local"
        assert data["service"] == "example"

    def test_found_upwards(self, cli: Cli, tmp_path: Path) -> None:
        """Without --spec, tower.toml is found in this folder or the nearest parent."""
        (tmp_path / "tower.toml").write_text('[service]\nname = "up"\n')
        (tmp_path / "a" / "b").mkdir(parents=True)
        result = cli("validate", cwd=tmp_path / "a" / "b")
        assert result.returncode == 0 and "service up" in result.stdout

    def test_no_spec_anywhere(self, cli: Cli, tmp_path: Path) -> None:
        """With no tower.toml up the tree, validate says to run tower init; exit 2."""
        result = cli("validate", cwd=tmp_path)
        assert result.returncode == 2
        assert "no tower.toml here or in any parent folder; run `tower init`" in result.stderr

    def test_env_overlay(self, cli: Cli, tmp_path: Path) -> None:
        """--env applies the overlay; an unknown environment is an error naming the known ones."""
        result = cli("validate", "--spec", str(EXAMPLE_SPEC), "--env", "nope")
        assert result.returncode == 2
        assert 'environments: no environment "nope" (local)' in result.stdout
        spec = tmp_path / "tower.toml"
        spec.write_text(
            '[service]\nname = "x"\n[environments.production.overrides.deploy]\n'
            'strategy = "canry"\n'
        )
        assert cli("validate", "--spec", str(spec), "--env", "staging").returncode == 2
        result = cli("validate", "--spec", str(spec), "--env", "production")
        assert result.returncode == 2
        assert (
            f'{spec}:4: deploy.strategy: must be one of immediate, rolling, bluegreen, canary (got "canry")'
            in result.stdout
        )
        result = cli("validate", "--spec", str(spec))
        assert result.returncode == 2, "without --env every overlay is checked"

    def test_secret_from_environment_never_printed(self, cli: Cli, tmp_path: Path) -> None:
        """A secret expanded from the environment never appears in validate's output."""
        spec = tmp_path / "tower.toml"
        spec.write_text(
            '[service]\nname = "x"\n[deploy.health]\ndeadline = "${DEADLINE}"\n'
            '[alerts.channels.ops]\ntype = "slack"\nurl = "${SLACK_URL}"\nurll = 1\n'
        )
        secret = "https://hooks.slack.test/T000/B000/s3cr3tv4lue"
        result = cli(
            "validate",
            "--spec",
            str(spec),
            env={"PATH": "/usr/bin:/bin", "SLACK_URL": secret, "DEADLINE": "s3cr3tv4lue"},
        )
        assert result.returncode == 2
        assert "s3cr3tv4lue" not in result.stdout + result.stderr
        assert "(got the value of ${DEADLINE})" in result.stdout


def write_app(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


class TestDetect:
    def test_nextjs_with_fly(self, tmp_path: Path) -> None:
        """package.json with next and a fly.toml: Next.js on Fly, name, port and memory from fly.toml."""
        root = write_app(
            tmp_path / "web",
            {
                "package.json": json.dumps(
                    {"name": "@acme/shop", "dependencies": {"next": "15.1.0", "react": "19"}}
                ),
                "fly.toml": 'app = "acme-shop"\n[http_service]\ninternal_port = 3000\n'
                '[[vm]]\nmemory = "1gb"\n',
                ".env.local": "A=1\n",
                ".env.production": "A=2\n",
                ".env.example": "A=\n",
            },
        )
        found = detect(root)
        assert (found.stack, found.framework, found.target) == ("nextjs", "next", "fly")
        assert (found.name, found.fly_app, found.port, found.memory) == (
            "acme-shop",
            "acme-shop",
            3000,
            "1gb",
        )
        assert found.env_files == [".env.local", ".env.production"]
        assert found.base_env_files == [".env.local"]
        assert found.preset == "nextjs-fly"

    def test_node_without_next(self, tmp_path: Path) -> None:
        """package.json without next is a Node app; with no fly.toml it gets the plain nextjs
        preset."""
        root = write_app(tmp_path / "api", {"package.json": '{"dependencies": {"express": "4"}}'})
        found = detect(root)
        assert (found.stack, found.port, found.preset) == ("node", 3000, "nextjs")

    @pytest.mark.parametrize(
        ("files", "stack", "framework"),
        [
            ({"requirements.txt": "fastapi==0.110\nuvicorn[standard]\n"}, "python-asgi", "fastapi"),
            ({"requirements-prod.txt": "Flask>=3\n# django\n"}, "python-wsgi", "flask"),
            (
                {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["starlette>=0.37"]\n'},
                "python-asgi",
                "starlette",
            ),
            (
                {"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.11"\nDjango = "^5"\n'},
                "python-wsgi",
                "django",
            ),
            (
                {
                    "pyproject.toml": '[project]\nname = "x"\ndependencies = ["django", "channels"]\n'
                },
                "python-asgi",
                "channels",
            ),
            ({"requirements.txt": "requests\n"}, "other", ""),
        ],
    )
    def test_python_frameworks(
        self, tmp_path: Path, files: dict[str, str], stack: str, framework: str
    ) -> None:
        """pyproject.toml (PEP 621 or Poetry) or requirements*.txt naming an ASGI or WSGI framework."""
        found = detect(write_app(tmp_path / "app", files))
        assert (found.stack, found.framework) == (stack, framework)
        assert found.preset == "python-asgi"

    def test_dockerfile_target(self, tmp_path: Path) -> None:
        """A Dockerfile without fly.toml means a Docker target; with fly.toml, Fly wins; with
        neither, the target is unknown."""
        root = write_app(tmp_path / "svc", {"Dockerfile": "FROM python:3.12\n"})
        found = detect(root)
        assert (found.target, found.has_dockerfile) == ("docker", True)
        assert "Dockerfile found: target docker" in found.evidence
        (root / "fly.toml").write_text('app = "svc"\n')
        assert detect(root).target == "fly"
        assert detect(write_app(tmp_path / "bare", {})).target == "unknown"

    def test_broken_files_are_evidence_not_crashes(self, tmp_path: Path) -> None:
        """Unparseable package.json, pyproject.toml and fly.toml are ignored, not fatal."""
        root = write_app(
            tmp_path / "odd",
            {"package.json": "{nope", "pyproject.toml": "[[[", "fly.toml": "app = "},
        )
        found = detect(root)
        assert found.stack == "other" and found.target == "fly"
        assert "package.json is not valid JSON: ignored" in found.evidence

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        name=st.text(max_size=80),
        fly_app=st.text(max_size=40),
        memory=st.text(max_size=10),
        port=st.integers(-5, 70000),
        env_files=st.lists(st.text(min_size=1, max_size=20), max_size=3),
        stack=st.sampled_from(["nextjs", "node", "python-asgi", "python-wsgi", "other"]),
        target=st.sampled_from(["fly", "docker", "other"]),
        preset=st.sampled_from(PRESETS),
    )
    def test_any_detection_renders_a_valid_spec(
        self,
        name: str,
        fly_app: str,
        memory: str,
        port: int,
        env_files: list[str],
        stack: str,
        target: str,
        preset: str,
    ) -> None:
        """Whatever a folder holds, the preset rendered from it is a valid tower.toml."""
        from controltower.spec.detect import _slug

        found = Detected(
            name=_slug(name),
            stack=stack,
            target=target,
            port=port,
            fly_app=fly_app,
            memory=memory,
            env_files=env_files,
        )
        parse_spec(render(preset, found), environ={})


class TestInit:
    def test_linked_vercel_project(self, cli: Cli, tmp_path: Path) -> None:
        """A Next.js app linked with `vercel link` gets target and driver vercel, with the
        project and team from .vercel/project.json, and a spec that validates."""
        (tmp_path / "package.json").write_text(
            json.dumps({"name": "shop", "dependencies": {"next": "15.1.0"}})
        )
        (tmp_path / ".vercel").mkdir()
        (tmp_path / ".vercel" / "project.json").write_text(
            json.dumps({"projectId": "prj_abc123", "orgId": "team_xyz"})
        )
        result = cli("init", str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert ".vercel/project.json links project prj_abc123: driver vercel" in result.stdout
        data = tomllib.loads((tmp_path / "tower.toml").read_text())
        assert data["service"]["target"] == "vercel"
        assert data["deploy"]["driver"] == "vercel"
        assert data["deploy"]["vercel"]["project"] == "prj_abc123"
        assert data["deploy"]["vercel"]["team_id"] == "team_xyz"
        assert cli("validate", "--spec", str(tmp_path / "tower.toml")).returncode == 0

    def test_nextjs_fly(self, cli: Cli, tmp_path: Path) -> None:
        """A Next.js app with fly.toml gets the nextjs-fly preset; its env catalog holds exactly
        the variables the code and .env files use, with the preset's knowledge of each kept."""
        (tmp_path / "package.json").write_text(
            json.dumps({"name": "@acme/shop", "dependencies": {"next": "15.1.0"}})
        )
        (tmp_path / "fly.toml").write_text(
            'app = "acme-shop"\n[http_service]\ninternal_port = 3000\n'
        )
        (tmp_path / ".env.local").write_text("STRIPE_SECRET_KEY=sk_test_1\n")
        (tmp_path / "lib").mkdir()
        (tmp_path / "lib" / "pay.ts").write_text(
            "export const key = process.env.STRIPE_SECRET_KEY!;\n"
            "export const pk = process.env.NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY ?? '';\n"
            "export const mine = process.env.SHOP_CURRENCY;\n"
        )
        result = cli("init", str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert "package.json depends on next" in result.stdout
        assert f"wrote {tmp_path / 'tower.toml'} from preset nextjs-fly" in result.stdout
        text = (tmp_path / "tower.toml").read_text()
        assert text.startswith("# tower.toml")
        data = tomllib.loads(text)
        assert data["service"]["name"] == "acme-shop"
        assert data["service"]["stack"] == "nextjs"
        assert data["service"]["target"] == "fly"
        assert data["deploy"]["driver"] == "fly"
        assert data["deploy"]["fly"]["app"] == "acme-shop"
        catalog = data["env"]["vars"]
        assert set(catalog) == {
            "STRIPE_SECRET_KEY",
            "NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY",
            "SHOP_CURRENCY",
        }
        assert catalog["STRIPE_SECRET_KEY"]["secret"] is True
        assert catalog["STRIPE_SECRET_KEY"]["prefix"] == [
            "sk_live_",
            "sk_test_",
            "rk_live_",
            "rk_test_",
        ]
        assert catalog["NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY"]["required"] is False
        assert "secret" not in catalog["SHOP_CURRENCY"]
        assert "lib/pay.ts:3" in catalog["SHOP_CURRENCY"]["description"]
        assert data["env"]["files"] == [".env.local"]
        assert cli("validate", cwd=tmp_path).returncode == 0

    def test_python_asgi(self, cli: Cli, tmp_path: Path) -> None:
        """A FastAPI app in main.py: served by uvicorn as main:app; with no platform file
        the target is unknown and the deploy driver exec."""
        (tmp_path / "requirements.txt").write_text("fastapi==0.110\nuvicorn\n")
        (tmp_path / "main.py").write_text("from fastapi import FastAPI\n\napp = FastAPI()\n")
        result = cli("init", str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert "fastapi (ASGI)" in result.stdout
        data = tomllib.loads((tmp_path / "tower.toml").read_text())
        assert data["service"]["stack"] == "python-asgi"
        assert data["service"]["entrypoint"] == "main:app"
        assert (data["service"]["target"], data["deploy"]["driver"]) == ("unknown", "exec")
        assert "local" not in data["deploy"]

    def test_python_wsgi_with_dockerfile(self, cli: Cli, tmp_path: Path) -> None:
        """A Flask app with a Dockerfile: python-wsgi on docker, the exec driver; the JSON
        report and the file agree on the target."""
        (tmp_path / "pyproject.toml").write_text(
            '[project]\nname = "x"\ndependencies = ["flask"]\n'
        )
        (tmp_path / "app.py").write_text("from flask import Flask\n\napp = Flask(__name__)\n")
        (tmp_path / "Dockerfile").write_text("FROM python:3.12\n")
        result = cli("init", str(tmp_path), "--format", "json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert (report["preset"], report["stack"], report["target"], report["driver"]) == (
            "python-asgi",
            "python-wsgi",
            "docker",
            "exec",
        )
        assert (report["entrypoint"], report["server"]) == ("app:app", "gunicorn")
        data = tomllib.loads((tmp_path / "tower.toml").read_text())
        assert data["service"]["target"] == "docker"
        assert data["service"]["entrypoint"] == "app:app"

    def test_never_overwrites_without_force(self, cli: Cli, tmp_path: Path) -> None:
        """An existing tower.toml is kept (exit 2) unless --force is given."""
        (tmp_path / "tower.toml").write_text("# mine\n")
        result = cli("init", str(tmp_path))
        assert result.returncode == 2
        assert "already exists; pass --force to overwrite it" in result.stderr
        assert (tmp_path / "tower.toml").read_text() == "# mine\n"
        assert cli("init", str(tmp_path), "--force", "--preset", "python-asgi").returncode == 0
        assert "# mine" not in (tmp_path / "tower.toml").read_text()

    def test_unknown_preset(self, cli: Cli, tmp_path: Path) -> None:
        """An unknown preset is a usage error naming the presets, and nothing is written."""
        result = cli("init", str(tmp_path), "--preset", "rails")
        assert result.returncode == 2
        assert "choose one of nextjs, nextjs-fly, python-asgi" in result.stderr
        assert not (tmp_path / "tower.toml").exists()

    @pytest.mark.parametrize("preset", PRESETS)
    def test_presets_are_valid_everywhere(self, cli: Cli, tmp_path: Path, preset: str) -> None:
        """Each preset validates, base and every environment overlay, with no env set."""
        assert cli("init", str(tmp_path), "--preset", preset).returncode == 0
        result = cli("validate", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stdout
