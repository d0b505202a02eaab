from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from controltower import __version__

ROOT = Path(__file__).resolve().parent.parent


def tower(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controltower", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


class TestRoot:
    def test_version(self) -> None:
        result = tower("--version")
        assert result.returncode == 0
        assert result.stdout.strip() == f"tower {__version__}"

    def test_help_lists_commands(self) -> None:
        result = tower("--help")
        assert result.returncode == 0
        for command in ("init", "validate"):
            assert command in result.stdout

    def test_unknown_command_is_usage_error(self) -> None:
        assert tower("frobnicate").returncode == 2


class TestValidate:
    def test_valid(self) -> None:
        result = tower("validate", "--spec", str(ROOT / "examples/app/tower.toml"))
        assert result.returncode == 0, result.stderr
        assert "valid: service example" in result.stdout

    def test_invalid_exits_2_with_every_error(self, tmp_path: Path) -> None:
        spec = tmp_path / "tower.toml"
        spec.write_text('[service]\nname = "x"\nport = "a"\n[deploy]\nstrategy = "blue-green"\n')
        result = tower("validate", "--spec", str(spec))
        assert result.returncode == 2
        assert f"{spec}:3: service.port: must be a whole number" in result.stdout
        assert f"{spec}:5: deploy.strategy: must be one of" in result.stdout
        assert "2 errors" in result.stdout

    def test_json(self, tmp_path: Path) -> None:
        spec = tmp_path / "tower.toml"
        spec.write_text('[service]\nname = "x"\nport = 0\n')
        result = tower("validate", "--spec", str(spec), "--format", "json")
        data = json.loads(result.stdout)
        assert data["valid"] is False
        assert data["errors"][0]["line"] == 3

    def test_found_upwards(self, tmp_path: Path) -> None:
        (tmp_path / "tower.toml").write_text('[service]\nname = "up"\n')
        (tmp_path / "a" / "b").mkdir(parents=True)
        result = tower("validate", cwd=tmp_path / "a" / "b")
        assert result.returncode == 0 and "service up" in result.stdout

    def test_env_overlay(self) -> None:
        result = tower("validate", "--spec", str(ROOT / "examples/app/tower.toml"), "--env", "nope")
        assert result.returncode == 2
        assert 'no environment "nope"' in result.stdout


class TestInit:
    def test_nextjs_fly(self, tmp_path: Path) -> None:
        """A Next.js app with fly.toml gets the nextjs-fly preset with its full env catalog."""
        (tmp_path / "package.json").write_text(
            json.dumps({"name": "@acme/shop", "dependencies": {"next": "15.1.0"}})
        )
        (tmp_path / "fly.toml").write_text(
            'app = "acme-shop"\n[http_service]\ninternal_port = 3000\n'
        )
        (tmp_path / ".env.local").write_text("A=1\n")
        result = tower("init", str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert "package.json depends on next" in result.stdout
        text = (tmp_path / "tower.toml").read_text()
        assert text.startswith("# tower.toml")
        data = tomllib.loads(text)
        assert data["service"]["name"] == "acme-shop"
        assert data["service"]["stack"] == "nextjs"
        catalog = set(data["env"]["vars"])
        for name in (
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
        ):
            assert name in catalog
        assert data["env"]["files"] == [".env.local"]
        assert tower("validate", cwd=tmp_path).returncode == 0

    def test_python_asgi(self, tmp_path: Path) -> None:
        (tmp_path / "requirements.txt").write_text("fastapi==0.110\nuvicorn\n")
        result = tower("init", str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert "fastapi (ASGI)" in result.stdout
        data = tomllib.loads((tmp_path / "tower.toml").read_text())
        assert data["service"]["stack"] == "python-asgi"

    def test_never_overwrites_without_force(self, tmp_path: Path) -> None:
        (tmp_path / "tower.toml").write_text("# mine\n")
        result = tower("init", str(tmp_path))
        assert result.returncode == 2
        assert "already exists" in result.stderr
        assert (tmp_path / "tower.toml").read_text() == "# mine\n"
        assert tower("init", str(tmp_path), "--force", "--preset", "python-asgi").returncode == 0
        assert "# mine" not in (tmp_path / "tower.toml").read_text()

    @pytest.mark.parametrize("preset", ["nextjs-fly", "python-asgi"])
    def test_presets_are_valid_everywhere(self, tmp_path: Path, preset: str) -> None:
        """Each preset validates, base and every environment overlay, with no env set."""
        assert tower("init", str(tmp_path), "--preset", preset).returncode == 0
        result = tower("validate", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stdout
