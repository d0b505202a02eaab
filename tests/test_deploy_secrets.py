"""Secrets never enter a release: a deploy with secrets in hooks, ``--set`` and
``[deploy.local.env]``, run through ``tower``, then looked for everywhere tower
prints or keeps anything: command output, step logs, release rows, every API
scope, the dashboard, logs, the SQLite file and a ``pg_dump``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from controltower.cli.main import app
from controltower.dashboard.auth import Accounts
from controltower.exceptions import DeployError, SpecError
from controltower.redaction import Secrets
from controltower.server import create_app, create_token
from controltower.server.api.common import forget_tokens
from controltower.server.factory import prepare
from controltower.spec import load_spec, parse_spec
from controltower.store import Store
from controltower.store.models.deploy import Release, ReleaseStep

STRIPE = "sk_live_51HookSecretValue0000"
LOCAL_TOKEN = "local-env-token-4242"
SESSION = "literal-session-secret-77"
SET_PASSWORD = "hunter2-set-password"
WEBHOOK = "whsec_setwebhookvalue9"
DB_URL_PASSWORD = "urlpass-9911"
SECRETS = (STRIPE, LOCAL_TOKEN, SESSION, SET_PASSWORD, WEBHOOK, DB_URL_PASSWORD)
PASSWORD = "correct horse battery"

SPEC = """
[service]
name = "shop"
target = "local"

[deploy]
driver = "exec"
strategy = "canary"
instances = 1

[deploy.exec]
deploy = 'echo "deploy $TOWER_VERSION pw=$DB_PASSWORD" >> calls.log; echo "started with $DB_PASSWORD"'
status = 'true'
switch = 'echo "switch $TOWER_VERSION $TOWER_WEIGHT" >> calls.log'

[deploy.health]
consecutive = 1
deadline = "1s"
interval = "50ms"

[[deploy.steps]]
weight = "50%"
pause = "10ms"

[deploy.hooks]
pre_deploy = ['echo "charging with ${STRIPE_SECRET_KEY}"', 'echo "token $LOCAL_API_TOKEN"']
pre_switch = ['echo "stripe said no to ${STRIPE_SECRET_KEY:-none}"; test ! -e fail-switch']

[deploy.local.env]
LOCAL_API_TOKEN = "${LOCAL_API_TOKEN}"
SESSION_SECRET = "literal-session-secret-77"
PLAIN = "visible"
"""


def tower(site: Path, *args: str, env: dict[str, str]) -> Result:
    old = Path.cwd()
    os.chdir(site)
    try:
        return CliRunner().invoke(
            app, list(args), catch_exceptions=True, env={"COLUMNS": "160", **env}
        )
    finally:
        os.chdir(old)


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A spec with secrets everywhere a deploy takes them; the store is SQLite in
    ``.tower`` (created by tower) or a fresh PostgreSQL database."""
    (tmp_path / "tower.toml").write_text(SPEC)
    env = {"STRIPE_SECRET_KEY": STRIPE, "LOCAL_API_TOKEN": LOCAL_TOKEN}
    if request.param == "postgres":
        env["TOWER_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    yield tmp_path, env


def store_text(site: Path, env: dict[str, str]) -> str:
    """Everything the store holds, as bytes on disk (SQLite) or as ``pg_dump`` prints it."""
    url = env.get("TOWER_DATABASE_URL")
    if url is None:
        return b"".join(p.read_bytes() for p in (site / ".tower").glob("tower.db*")).decode(
            "latin-1"
        )
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump is needed to look inside the PostgreSQL store"
    done = subprocess.run(
        [pg_dump, "--no-owner", "--data-only", url], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0 and "server version mismatch" in done.stderr:
        pytest.fail(f"pg_dump cannot read this server: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert "deploy_release_steps" in done.stdout or "release" in done.stdout
    return done.stdout


class TestDeployWithSecrets:
    def test_no_secret_anywhere(
        self,
        site: tuple[Path, dict[str, str]],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Deploys (one rolled back by a hook that prints a secret) and a rollback: no
        secret value in any output, step, release row, API answer, dashboard page, log,
        or in the store's own bytes; hook commands are shown as written."""
        caplog.set_level(logging.DEBUG)
        root, env = site
        given = [
            "--set",
            f"DB_PASSWORD={SET_PASSWORD}",
            "--set",
            f"STRIPE_WEBHOOK_SECRET={WEBHOOK}",
        ]
        given += ["--set", f"DATABASE_URL=postgres://app:{DB_URL_PASSWORD}@db.internal/app"]
        outputs: list[str] = []
        for version in ("1.0", "2.0"):
            result = tower(root, "deploy", "--version", version, *given, env=env)
            assert result.exit_code == 0, result.output
            outputs.append(result.output)
        (root / "fail-switch").touch()
        failed = tower(root, "deploy", "--version", "3.0", *given, "--format", "json", env=env)
        outputs.append(failed.output)
        assert '"rolled_back"' in failed.output, failed.output
        (root / "fail-switch").unlink()
        assert "stripe said no to ***" in failed.output, "the hook's last line, redacted"

        refused = tower(root, "rollback", env=env)
        outputs.append(refused.output)
        assert isinstance(refused.exception, DeployError), refused.output
        assert "DATABASE_URL, DB_PASSWORD, STRIPE_WEBHOOK_SECRET" in refused.exception.message
        assert "export DATABASE_URL DB_PASSWORD" in (refused.exception.hint or "")
        rolled = tower(
            root,
            "rollback",
            env={
                **env,
                "DB_PASSWORD": SET_PASSWORD,
                "STRIPE_WEBHOOK_SECRET": WEBHOOK,
                "DATABASE_URL": f"postgres://app:{DB_URL_PASSWORD}@db.internal/app",
            },
        )
        outputs.append(rolled.output)
        assert rolled.exit_code == 0, rolled.output
        calls = (root / "calls.log").read_text()
        assert calls.count(f"pw={SET_PASSWORD}") == 4, "every start got the secret it was given"

        listed = tower(root, "releases", "--format", "json", env=env)
        outputs.append(listed.output)
        for release_id in re.findall(r'"id": "(r[0-9]+-[0-9a-f]+)"', listed.output):
            for fmt in ("text", "json"):
                shown = tower(root, "releases", "show", release_id, "--format", fmt, env=env)
                assert shown.exit_code == 0, shown.output
                outputs.append(shown.output)
        text = "\n".join(outputs)
        assert not leaks(text)
        assert "charging with ${STRIPE_SECRET_KEY}" in text, "hook commands as written"

        spec = load_spec(root / "tower.toml", environ=env)
        with Store.for_spec(spec, env.get("TOWER_DATABASE_URL")) as store:
            with store.session() as session:
                rows = session.scalars(select(Release)).all()
                steps = session.scalars(select(ReleaseStep)).all()
                assert len(rows) == 4
                for row in rows:
                    assert not leaks(repr(row.config)) and not leaks(row.reason)
                    assert sorted(row.config["secret_env"]) == [
                        "DATABASE_URL",
                        "DB_PASSWORD",
                        "STRIPE_WEBHOOK_SECRET",
                    ]
                    assert row.config["deploy"]["local"]["env"]["PLAIN"] == "visible"
                assert not leaks(" ".join(f"{s.message} {s.detail}" for s in steps))
            api_text = self._served(store)
            assert not leaks(api_text)
            assert "charging with ${STRIPE_SECRET_KEY}" in api_text
        assert not leaks(caplog.text)
        stored = store_text(root, env)
        assert "charging with" in stored, "the dump holds the step log"
        assert not leaks(stored)

    def _served(self, store: Store) -> str:
        """Every release through the API with each scope, and the dashboard's deploy pages."""
        forget_tokens()
        Accounts(store).add_user("ana", PASSWORD)
        context, _ = prepare(parse_spec('[service]\nname = "shop"\n', environ={}), store)
        answers: list[str] = []
        with TestClient(create_app(context), base_url="http://tower.test") as client:
            for scope in ("read", "write", "ingest"):
                token = create_token(store, scope, [scope])[0]
                headers = {"Authorization": f"Bearer {token}"}
                listed = client.get("/api/v1/releases", headers=headers)
                answers.append(listed.text)
                if scope == "ingest":
                    assert listed.status_code == 403
                    continue
                assert listed.status_code == 200
                for item in listed.json()["items"]:
                    one = client.get(f"/api/v1/releases/{item['id']}", headers=headers)
                    assert one.status_code == 200
                    answers.append(one.text)
            form = client.get("/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf
            client.post(
                "/login",
                data={"csrf": csrf.group(1), "name": "ana", "password": PASSWORD, "next": "/"},
            )
            deploys = client.get("/deploys")
            assert deploys.status_code == 200
            answers.append(deploys.text)
            for release_id in set(re.findall(r"/deploys/(r[0-9]+-[0-9a-f]+)", deploys.text)):
                page = client.get(f"/deploys/{release_id}")
                assert page.status_code == 200
                answers.append(page.text)
        return "\n".join(answers)

    def test_tower_creates_its_state_private(self, tmp_path: Path) -> None:
        """The store file and the ``.tower`` folder tower creates are 0600 and 0700."""
        (tmp_path / "tower.toml").write_text('[service]\nname = "shop"\n')
        spec = load_spec(tmp_path / "tower.toml", environ={})
        old = os.environ.pop("TOWER_DATABASE_URL", None)
        try:
            with Store.for_spec(spec):
                pass
        finally:
            if old is not None:
                os.environ["TOWER_DATABASE_URL"] = old
        folder, database = tmp_path / ".tower", tmp_path / ".tower" / "tower.db"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(database.stat().st_mode) == 0o600
        for sidecar in folder.glob("tower.db-*"):
            assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600, sidecar.name


class TestSecrets:
    def test_gathers_by_name_shape_url_and_spec_field(self) -> None:
        """Secret-named variables, server-key shapes, URL passwords and the spec's
        secret fields are secrets; plain values are not."""
        spec = parse_spec(
            '[service]\nname = "x"\n[alerts.channels.ops]\ntype = "slack"\n'
            'url = "https://hooks.slack.test/T0/B0/abcdefgh"\n',
            environ={},
        )
        found = Secrets.gather(
            spec,
            environ={"API_TOKEN": "tok-1234", "HOME": "/home/me", "KEY": "sk_test_abcd"},
            given={"DATABASE_URL": "postgres://u:pgpass99@h/db", "PORT": "8080"},
        )
        assert "https://hooks.slack.test/T0/B0/abcdefgh" in found.values
        assert found.redact("tok-1234 /home/me sk_test_abcd pgpass99 8080") == (
            "*** /home/me *** *** 8080"
        )

    def test_split_env_keeps_names_of_secrets(self) -> None:
        """A release's variables split into those fit to store and the names of secrets."""
        secrets = Secrets.gather(environ={}, given={"DB_PASSWORD": "pw-12345"})
        plain, hidden = secrets.split_env(
            {"DB_PASSWORD": "pw-12345", "MODE": "fast", "X": "sk_live_abcd"}
        )
        assert plain == {"MODE": "fast"}
        assert hidden == ["DB_PASSWORD", "X"]

    def test_hook_commands_stay_unexpanded_but_are_checked(self) -> None:
        """``${VAR}`` in a hook is left for the shell; an unset one is still a spec error."""
        text = '[service]\nname = "x"\n[deploy.hooks]\npre_deploy = ["echo ${TOKEN} $$"]\n'
        spec = parse_spec(text, environ={"TOKEN": "t-secret"})
        assert spec.deploy.hooks.pre_deploy == ["echo ${TOKEN} $$"]
        with pytest.raises(SpecError, match="TOKEN is not set"):
            parse_spec(text, environ={})
