"""``tower deploy``, ``tower rollback`` and ``tower releases`` (exec driver: shell commands)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from controltower.cli.main import app
from controltower.deploy import ReleaseView, dora, open_engine
from controltower.deploy.git import git_info
from controltower.exceptions import TowerError
from controltower.spec import load_spec
from controltower.store import Store

SPEC = """
[service]
name = "shop"
target = "local"

[deploy]
driver = "exec"
strategy = "canary"
instances = 1

[deploy.exec]
deploy = 'echo "deploy $TOWER_VERSION" >> calls.log'
status = 'test ! -e unready-$TOWER_VERSION'
switch = 'echo "switch $TOWER_VERSION $TOWER_WEIGHT" >> calls.log'

[deploy.health]
consecutive = 1
deadline = "1s"
interval = "50ms"
{steps}
"""

TIMED = '\n[[deploy.steps]]\nweight = "50%"\npause = "10ms"\n'
UNTIMED = '\n[[deploy.steps]]\nweight = "50%"\n'


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "tower.toml").write_text(SPEC.format(steps=TIMED))
    return tmp_path


def tower(site: Path, *args: str) -> Result:
    old = Path.cwd()
    os.chdir(site)
    try:
        return CliRunner().invoke(app, list(args), catch_exceptions=True, env={"COLUMNS": "160"})
    finally:
        os.chdir(old)


def exit_code(result: Result) -> int:
    """The exit code ``tower`` gives: a TowerError's own code, else click's."""
    if isinstance(result.exception, TowerError):
        return result.exception.exit_code
    return result.exit_code


def as_json(result: Result) -> dict[str, object]:
    data: dict[str, object] = json.loads(result.stdout)
    return data


class TestDeployCommand:
    def test_deploy_shows_progress_and_summary(self, site: Path) -> None:
        """Text output: each step as it happens, then one summary line; exit 0."""
        result = tower(site, "deploy", "--version", "1.0")
        assert exit_code(result) == 0, result.output
        assert "deploying 1.0 of shop (canary via exec)" in result.stdout
        assert "health" in result.stdout and "route" in result.stdout
        assert "of 1.0: succeeded in" in result.stdout

    def test_json_and_rollback_exit_code(self, site: Path) -> None:
        """--format json prints the release; a rolled-back deploy exits 1 with its reason."""
        first = as_json(tower(site, "deploy", "--version", "1.0", "--format", "json"))
        assert first["status"] == "succeeded" and first["strategy"] == "canary"
        (site / "unready-2.0").touch()
        result = tower(site, "deploy", "--version", "2.0", "--format", "json")
        assert exit_code(result) == 1
        second = as_json(result)
        assert second["status"] == "rolled_back"
        assert "passed readiness" in str(second["reason"])

    def test_bad_set_is_a_usage_error(self, site: Path) -> None:
        """--set without KEY=VALUE is refused with exit code 2."""
        result = tower(site, "deploy", "--version", "1.0", "--set", "NOPE")
        assert exit_code(result) == 2
        assert "is not KEY=VALUE" in str(result.exception)

    @pytest.mark.parametrize("command", [["deploy"], ["rollback"], ["releases"]])
    def test_help_has_examples_and_exit_codes(self, site: Path, command: list[str]) -> None:
        """Every command's --help shows examples and what each exit code means."""
        result = tower(site, *command, "--help")
        assert result.exit_code == 0
        assert "Examples:" in result.stdout and "Exit codes:" in result.stdout

    def test_status(self, site: Path) -> None:
        """`tower deploy status` shows what serves, the split and the instances."""
        tower(site, "deploy", "--version", "1.0")
        data = as_json(tower(site, "deploy", "status", "--format", "json"))
        current = data["current"]
        assert isinstance(current, dict) and current["version"] == "1.0"
        assert data["routes"] == {current["id"]: 1.0}
        assert data["active"] is None and data["holder"] is None
        text = tower(site, "deploy", "status").stdout
        assert f"serving: {current['id']} (1.0)" in text


class TestRollbackCommand:
    def test_rollback_to_previous_and_named(self, site: Path) -> None:
        """`tower rollback` returns to the previous good release; a named one on request."""
        one = as_json(tower(site, "deploy", "--version", "1.0", "--format", "json"))
        tower(site, "deploy", "--version", "2.0")
        tower(site, "deploy", "--version", "3.0")
        back = as_json(tower(site, "rollback", "--format", "json"))
        assert (back["kind"], back["version"], back["status"]) == ("rollback", "2.0", "succeeded")
        named = tower(site, "rollback", str(one["id"])[:18], "--format", "json")
        assert exit_code(named) == 0, named.output
        assert as_json(named)["version"] == "1.0"

    def test_nothing_to_roll_back(self, site: Path) -> None:
        """With a single release, rollback says so and exits 1."""
        tower(site, "deploy", "--version", "1.0")
        result = tower(site, "rollback")
        assert exit_code(result) == 1
        assert "no good release before" in str(result.exception)

    def test_unknown_release(self, site: Path) -> None:
        """An id that matches nothing is named in the error."""
        tower(site, "deploy", "--version", "1.0")
        result = tower(site, "rollback", "r1999")
        assert "release id 'r1999' matches no release of shop" in str(result.exception)


class TestReleasesCommand:
    def test_list_show_and_dora(self, site: Path) -> None:
        """History newest first, one release's step log, and DORA figures."""
        tower(site, "deploy", "--version", "1.0")
        (site / "unready-2.0").touch()
        tower(site, "deploy", "--version", "2.0")
        data = as_json(tower(site, "releases", "--dora", "--format", "json"))
        releases = data["releases"]
        assert isinstance(releases, list)
        assert [(r["version"], r["status"]) for r in releases] == [
            ("2.0", "rolled_back"),
            ("1.0", "succeeded"),
        ]
        figures = data["dora"]
        assert isinstance(figures, dict)
        # 2.0 failed readiness: refused before traffic, not a failed change
        assert (figures["deploys"], figures["failed_changes"], figures["refused"]) == (1, 0, 1)
        assert figures["change_failure_rate"] == 0.0
        shown = tower(site, "releases", "show", str(releases[0]["id"]))
        assert "rolling_back" in shown.stdout and "passed readiness" in shown.stdout
        steps = as_json(tower(site, "releases", "show", str(releases[0]["id"]), "--format", "json"))
        assert [s["state"] for s in steps["steps"]][:2] == ["created", "gates"]  # type: ignore[index]
        stats = tower(site, "releases", "stats", "--days", "7")
        assert "last 7 days: 1 deploys" in stats.stdout
        assert "change failure rate 0%" in stats.stdout
        assert "1 refused before traffic" in stats.stdout
        table = tower(site, "releases").stdout
        assert "rolled_back" in table and "succeeded" in table
        assert f"{releases[0]['id']}: health: instance" in table


def background_deploy(site: Path, version: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "controltower", "deploy", "--version", version, "--format", "json"],
        cwd=site,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_state(site: Path, state: str, deadline: float = 60.0) -> None:
    engine = open_engine(load_spec(site / "tower.toml"))
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        active = engine.active()
        if active is not None and active.state == state:
            return
        time.sleep(0.2)
    raise AssertionError(f"no deploy reached {state}")


class TestPromoteAndAbort:
    def test_pause_without_duration_waits_for_promote(self, site: Path) -> None:
        """A canary step with no pause waits; `tower deploy promote` from elsewhere moves it on."""
        tower(site, "deploy", "--version", "1.0")
        (site / "tower.toml").write_text(SPEC.format(steps=UNTIMED))
        running = background_deploy(site, "2.0")
        try:
            wait_for_state(site, "paused")
            promoted = tower(site, "deploy", "promote")
            assert "promote requested" in promoted.stdout
            out, err = running.communicate(timeout=60)
        finally:
            running.kill()
        assert running.returncode == 0, err
        assert json.loads(out)["status"] == "succeeded"

    def test_abort_rolls_back(self, site: Path) -> None:
        """`tower deploy abort` makes the waiting deploy roll back; it exits 1."""
        tower(site, "deploy", "--version", "1.0")
        (site / "tower.toml").write_text(SPEC.format(steps=UNTIMED))
        running = background_deploy(site, "2.0")
        try:
            wait_for_state(site, "paused")
            tower(site, "deploy", "abort")
            out, _ = running.communicate(timeout=60)
        finally:
            running.kill()
        assert running.returncode == 1
        assert json.loads(out)["status"] == "rolled_back"
        assert "aborted" in json.loads(out)["reason"]

    def test_orphaned_pause_blocks_new_deploys_until_decided(self, site: Path) -> None:
        """A paused deploy whose process died is kept; a new deploy is refused until promote."""
        tower(site, "deploy", "--version", "1.0")
        (site / "tower.toml").write_text(SPEC.format(steps=UNTIMED))
        running = background_deploy(site, "2.0")
        try:
            wait_for_state(site, "paused")
        finally:
            running.kill()
            running.wait()
        refused = tower(site, "deploy", "--version", "3.0")
        assert exit_code(refused) == 1
        assert "waiting for a decision" in str(refused.exception)
        done = tower(site, "deploy", "promote", "--format", "json")
        assert exit_code(done) == 0, done.output
        assert as_json(done)["version"] == "2.0" and as_json(done)["status"] == "succeeded"


def view(
    id: str,
    kind: str,
    status: str,
    start: datetime,
    took: float,
    previous: str = "",
    committed: datetime | None = None,
) -> ReleaseView:
    return ReleaseView(
        id=id,
        kind=kind,
        version=id,
        image="",
        status=status,
        state=status,
        strategy="canary",
        driver="exec",
        actor="ci",
        git_commit="",
        previous_id=previous,
        reason="",
        created_at=start,
        finished_at=start + timedelta(seconds=took),
        config_hash="",
        committed_at=committed,
    )


class TestDora:
    def test_exact_figures(self) -> None:
        """Frequency, change failure rate, median time to restore and median lead time."""
        t0 = datetime(2026, 3, 1, tzinfo=UTC)
        hour = timedelta(hours=1)
        releases = [
            view("a", "deploy", "succeeded", t0, 60, committed=t0 - hour),
            view("b", "deploy", "rolled_back", t0 + hour, 120),
            view("c", "deploy", "succeeded", t0 + 2 * hour, 60, committed=t0),
            view("r", "rollback", "succeeded", t0 + 3 * hour, 30, previous="c"),
            view("d", "deploy", "succeeded", t0 + 4 * hour, 60, committed=t0 + 3 * hour),
            view("old", "deploy", "failed", t0 - timedelta(days=40), 10),
            view("live", "deploy", "running", t0 + 5 * hour, 0),
        ]
        figures = dora(releases, now=t0 + timedelta(days=1), days=10)
        assert figures.deploys == 4
        assert figures.succeeded == 3
        assert figures.failed_changes == 2  # b rolled back; c undone by rollback r
        assert figures.change_failure_rate == 0.5
        assert figures.deploys_per_day == pytest.approx(0.3)
        # b: restored when it finished (120 s); c: restored when r finished (1 h 30 s)
        assert figures.time_to_restore == pytest.approx((120 + 3630) / 2)
        # lead times: a 3660 s, c 7260 s, d 3660 s
        assert figures.lead_time == 3660

    def test_lead_time_from_git(self, tmp_path: Path) -> None:
        """The commit checked out is recorded with its commit time; --commit names another."""
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.test",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.test",
        }

        def git(*args: str, when: str = "") -> str:
            extra = {"GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when} if when else {}
            return subprocess.run(
                ["git", *args],
                cwd=tmp_path,
                env={**env, **extra},
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()

        git("init", "-q")
        (tmp_path / "tower.toml").write_text(SPEC.format(steps=TIMED))
        git("add", ".")
        git("commit", "-qm", "one", when="2026-01-01T10:00:00+00:00")
        first = git("rev-parse", "HEAD")
        git("commit", "-qm", "two", "--allow-empty", when="2026-01-02T10:00:00+00:00")
        head = git("rev-parse", "HEAD")
        assert git_info(tmp_path) == (head, datetime(2026, 1, 2, 10, tzinfo=UTC))
        engine = open_engine(
            load_spec(tmp_path / "tower.toml"),
            store=Store.open(f"sqlite:///{tmp_path / 't.db'}"),
        )
        release = engine.deploy(version="1.0")
        assert release.git_commit == head
        assert release.committed_at == datetime(2026, 1, 2, 10, tzinfo=UTC)
        named = engine.deploy(version="0.9", git_commit=first[:10])
        assert named.git_commit == first
        assert named.committed_at == datetime(2026, 1, 1, 10, tzinfo=UTC)
        figures = dora(engine.releases(), now=datetime.now(UTC), days=36500)
        assert figures.lead_time is not None and figures.lead_time > 86400
