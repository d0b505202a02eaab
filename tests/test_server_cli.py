"""``tower serve``, ``tower token`` and ``tower user`` from the command line (in process).

Running servers are covered in test_server_live.py; here: help, DSNs, tokens and
dashboard users, each in the store named by tower.toml.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controltower.cli.main import app
from controltower.dashboard.auth import Accounts
from controltower.server.tokens import verify_token
from controltower.store import Store

SPEC = """
[service]
name = "shop"

[server]
port = 8655
public_url = "https://tower.shop.example"

[store]
url = "{url}"

[[server.projects]]
name = "web"

[[server.projects]]
name = "worker"
rate_limit = 60
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    """A tower.toml whose [store] url points at a SQLite file (not the default place)."""
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    spec = tmp_path / "tower.toml"
    spec.write_text(SPEC.format(url=url))
    return spec, url


def run(*args: str, stdin: str | None = None) -> object:
    return CliRunner().invoke(app, list(args), input=stdin)


def tower(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real command, for exit codes that `tower` gives TowerErrors."""
    return subprocess.run(
        [sys.executable, "-m", "controltower", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


class TestServeCommand:
    def test_help_has_examples_and_exit_codes(self) -> None:
        """--help shows the options, examples and exit codes."""
        result = run("serve", "--help")
        assert result.exit_code == 0
        for text in ("--no-monitors", "--workers", "Examples:", "Exit codes:", "SIGTERM"):
            assert text in result.output

    def test_print_dsn_as_json(self, project: tuple[Path, str]) -> None:
        """--print-dsn --format json lists each project's DSN with the public URL, and
        what this process would run; it creates the projects in the spec's store."""
        spec, _ = project
        result = run("serve", "--spec", str(spec), "--print-dsn", "--format", "json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert set(data["projects"]) == {"web", "worker"}
        assert data["projects"]["web"].startswith("https://")
        assert data["projects"]["web"].endswith("@tower.shop.example/1")
        assert data["dashboard"] == "http://127.0.0.1:8655/"
        assert data["services"] == ["api", "ingest", "dashboard"]
        assert data["store"].startswith("sqlite:///") and "elsewhere.db" in data["store"]
        again = run("serve", "--spec", str(spec), "--print-dsn", "--format", "json")
        assert json.loads(again.output)["projects"] == data["projects"], "keys are stable"


class TestTokenCommands:
    def test_create_list_revoke(self, project: tuple[Path, str]) -> None:
        """A token is printed once, works, is listed without its value and can be revoked."""
        spec, url = project
        created = run(
            "token", "create", "--spec", str(spec), "--name", "ci", "--scope", "read",
            "--format", "json",
        )  # fmt: skip
        assert created.exit_code == 0, created.output
        token = json.loads(created.output)["token"]
        with Store.open(url) as store:
            assert verify_token(store, token) is not None
        listed = run("token", "list", "--spec", str(spec))
        assert "ci" in listed.output and token not in listed.output
        revoked = run("token", "revoke", "1", "--spec", str(spec))
        assert revoked.exit_code == 0
        with Store.open(url) as store:
            assert verify_token(store, token) is None
        assert run("token", "revoke", "1", "--spec", str(spec)).exit_code == 1

    def test_bad_scope_is_a_usage_error(self, project: tuple[Path, str]) -> None:
        """An unknown scope exits 2 and says which scopes exist."""
        spec, _ = project
        result = tower("token", "create", "--spec", str(spec), "--name", "x", "--scope", "admin")
        assert result.returncode == 2
        assert "read, write, ingest" in result.stderr + result.stdout

    def test_dsn(self, project: tuple[Path, str]) -> None:
        """`tower token dsn web` prints that project's DSN; an unknown project exits 1."""
        spec, _ = project
        result = run("token", "dsn", "worker", "--spec", str(spec))
        assert result.exit_code == 0 and "@tower.shop.example/2" in result.output
        assert run("token", "dsn", "nope", "--spec", str(spec)).exit_code == 1


class TestUserCommands:
    def test_add_list_remove_in_the_specs_store(self, project: tuple[Path, str]) -> None:
        """Users land in the store tower.toml names (where `tower serve` looks for them)."""
        spec, url = project
        added = run("user", "add", "ana", "--spec", str(spec), "--password-stdin",
                    stdin="correct horse battery\n")  # fmt: skip
        assert added.exit_code == 0, added.output
        with Store.open(url) as store:
            assert Accounts(store).login("ana", "correct horse battery") is not None
        listed = run("user", "list", "--spec", str(spec), "--format", "json")
        assert json.loads(listed.output) == {"users": ["ana"]}
        assert run("user", "remove", "ana", "--spec", str(spec)).exit_code == 0
        assert run("user", "remove", "ana", "--spec", str(spec)).exit_code == 1

    def test_short_password_is_refused(self, project: tuple[Path, str]) -> None:
        """A password under 10 characters exits 2 and stores nothing."""
        spec, url = project
        result = tower(
            "user", "add", "bob", "--spec", str(spec), "--password-stdin", stdin="short\n"
        )
        assert result.returncode == 2
        assert "10 characters" in result.stderr + result.stdout
        with Store.open(url) as store:
            assert Accounts(store).users() == []
