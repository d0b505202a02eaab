"""The exec driver, and the engine's gates, hooks and notifications, with real shell commands.

The "platform" is a set of shell commands that append what they were told to
``calls.log``; readiness comes from a file the test controls.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from controltower.deploy import Engine, ReleaseInfo, open_engine
from controltower.deploy.drivers.exec import ExecDriver
from controltower.deploy.lock import DeployLock
from controltower.exceptions import DriverError
from controltower.notify import Dispatcher
from controltower.spec import parse_spec
from controltower.spec.deploy import ExecDriverSpec, Strategy
from controltower.store import Store
from tests.fakes.receiver import WebhookReceiver
from tests.fakes.server import FakeServer, Request, Response

SPEC = """
[service]
name = "shop"
target = "local"

[deploy]
driver = "exec"
strategy = "canary"
instances = 1
{lock}

[deploy.exec]
deploy = 'echo "deploy $TOWER_RELEASE_ID $TOWER_VERSION count=$TOWER_COUNT flag=$FLAG" >> calls.log; echo "building..."; echo "https://$TOWER_VERSION.preview.test"'
status = 'echo "status $TOWER_VERSION $TOWER_PATH $TOWER_URL" >> calls.log; test ! -e unready-$TOWER_VERSION'
switch = 'echo "switch $TOWER_VERSION weight=$TOWER_WEIGHT previous=$TOWER_PREVIOUS_RELEASE_ID url=$TOWER_URL" >> calls.log'
rollback = 'echo "rollback $TOWER_VERSION url=$TOWER_URL" >> calls.log'
stop = 'echo "stop $TOWER_VERSION count=$TOWER_COUNT" >> calls.log'
timeout = "{timeout}"

[deploy.health]
consecutive = 2
deadline = "1s"
interval = "50ms"

[[deploy.steps]]
weight = "25%"
pause = "10ms"
{extra}
"""


def make(tmp_path: Path, extra: str = "", timeout: str = "30s", lock: str = "") -> Engine:
    path = tmp_path / "tower.toml"
    path.write_text(SPEC.format(extra=extra, timeout=timeout, lock=lock))
    spec = parse_spec(path.read_text(), source=str(path))
    return open_engine(spec, store=Store.open(f"sqlite:///{tmp_path / 'tower.db'}"), actor="ci")


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def ids(engine: Engine) -> list[str]:
    return [r.id for r in reversed(engine.releases())]


class TestExecDriver:
    def test_canary_runs_each_command_with_its_variables(self, tmp_path: Path) -> None:
        """deploy, status, switch and stop run in order with the release, URL and split."""
        engine = make(tmp_path)
        first = engine.deploy(version="1.0", env={"FLAG": "on"})
        (tmp_path / "calls.log").unlink()
        second = engine.deploy(version="2.0")
        assert (first.status, second.status) == ("succeeded", "succeeded"), second.reason
        assert calls(tmp_path) == [
            f"deploy {second.id} 2.0 count=1 flag=",
            "status 2.0 /api/health https://2.0.preview.test",
            "status 2.0 /api/health https://2.0.preview.test",
            f"switch 2.0 weight=25 previous={first.id} url=https://2.0.preview.test",
            "switch 2.0 weight=100 previous= url=https://2.0.preview.test",
            "stop 1.0 count=0",
        ]
        assert engine.driver.routes() == {second.id: 1.0}
        assert [i.address for i in engine.driver.instances()] == ["https://2.0.preview.test"]

    def test_release_env_reaches_deploy(self, tmp_path: Path) -> None:
        """Variables given with the release (``--set``) are in the deploy command's environment."""
        engine = make(tmp_path)
        release = engine.deploy(version="1.0", env={"FLAG": "on"})
        assert calls(tmp_path)[0] == f"deploy {release.id} 1.0 count=1 flag=on"

    def test_not_ready_is_rolled_back_with_the_rollback_command(self, tmp_path: Path) -> None:
        """A status command that keeps failing fails the health gate; rollback puts 1.0 back."""
        engine = make(tmp_path)
        first = engine.deploy(version="1.0")
        (tmp_path / "unready-2.0").touch()
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back"
        assert "passed readiness /api/health 0 of 2 times" in second.reason
        assert "[deploy.exec] status" in second.reason and "exited 1" in second.reason
        assert calls(tmp_path)[-2:] == [
            "rollback 1.0 url=https://1.0.preview.test",
            "stop 2.0 count=0",
        ]
        assert not any(line.startswith("switch 2.0") for line in calls(tmp_path))
        assert engine.driver.routes() == {first.id: 1.0}

    def test_failing_deploy_command_quotes_its_output(self, tmp_path: Path) -> None:
        """A deploy command exiting non-zero fails the release with its exit code and last line."""
        extra = ""
        engine = make(tmp_path, extra)
        engine.deploy(version="1.0")
        spec = engine.spec.deploy.exec.model_copy(
            update={"deploy": "echo 'quota exceeded for project' >&2; exit 7"}
        )
        engine.driver = ExecDriver(spec, root=tmp_path, url=None, service="shop")
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back"
        assert "exited 7: quota exceeded for project" in second.reason

    def test_timeout(self, tmp_path: Path) -> None:
        """A command over [deploy.exec] timeout is stopped and reported as such."""
        driver = ExecDriver(
            ExecDriverSpec(deploy="sleep 5", switch="true", timeout=0.3),
            root=tmp_path,
            url=None,
            service="shop",
        )
        with pytest.raises(DriverError, match=r"deploy timed out after 0\.3s"):
            driver.start(ReleaseInfo("r", "1"), 1)

    def test_deploy_and_switch_are_required(self, tmp_path: Path) -> None:
        """Without deploy and switch commands the driver says what to write."""
        with pytest.raises(DriverError, match="needs at least deploy and switch"):
            ExecDriver(ExecDriverSpec(deploy="x"), root=tmp_path, url=None, service="s")


class TestBuildArtifact:
    def test_build_prints_the_artifact_and_rollback_deploys_it_again(self, tmp_path: Path) -> None:
        """The last line `build` prints is the artifact; a rollback gives `deploy` the old one."""
        engine = make(tmp_path)
        path = tmp_path / "tower.toml"
        text = path.read_text().replace(
            "[deploy.exec]\n",
            "[deploy.exec]\nbuild = 'echo compiling; echo registry.test/shop@sha256:$(printf %s "
            "$TOWER_VERSION | sha256sum | cut -c1-64)'\n",
        )
        text = text.replace(
            "deploy = 'echo \"deploy",
            'deploy = \'echo "artifact $TOWER_ARTIFACT" >> calls.log; echo "deploy',
        )
        path.write_text(text)
        engine = open_engine(
            parse_spec(text, source=str(path)),
            store=Store.open(f"sqlite:///{tmp_path / 'tower.db'}"),
            actor="ci",
        )
        first = engine.deploy(version="1.0")
        second = engine.deploy(version="2.0")
        assert first.artifact.startswith("registry.test/shop@sha256:")
        assert first.artifact_digest == "sha256:" + first.artifact.split("@sha256:")[1]
        assert first.artifact_kind == "reference" and first.artifact != second.artifact
        (tmp_path / "calls.log").unlink()
        back = engine.rollback()
        assert back.status == "succeeded", back.reason
        assert back.artifact == first.artifact
        assert calls(tmp_path)[0] == f"artifact {first.artifact}"


class TestHooks:
    def test_hooks_see_the_release(self, tmp_path: Path) -> None:
        """Each hook runs with TOWER_* release variables; post_deploy sees the finished release."""
        extra = """
[deploy.hooks]
pre_deploy = ['echo "$TOWER_PHASE $TOWER_VERSION $TOWER_PREVIOUS_RELEASE_ID" >> hooks.log']
pre_switch = ['echo "$TOWER_PHASE $TOWER_RELEASE_ID $TOWER_STRATEGY" >> hooks.log']
post_deploy = ['echo "$TOWER_PHASE $TOWER_SERVICE $TOWER_ACTOR" >> hooks.log']
"""
        engine = make(tmp_path, extra)
        first = engine.deploy(version="1.0")
        second = engine.deploy(version="2.0")
        lines = (tmp_path / "hooks.log").read_text().splitlines()
        assert lines[3:] == [
            f"pre_deploy 2.0 {first.id}",
            f"pre_switch {second.id} canary",
            "post_deploy shop ci",
        ]

    def test_failing_pre_switch_keeps_traffic_away(self, tmp_path: Path) -> None:
        """A pre-switch hook exiting non-zero rolls back before the new release sees traffic."""
        extra = """
[deploy.hooks]
pre_switch = ['test "$TOWER_VERSION" != 2.0 || { echo "migration check failed"; exit 4; }']
on_rollback = ['echo "rolled back $TOWER_RELEASE_ID" > rollback.txt']
"""
        engine = make(tmp_path, extra)
        engine.deploy(version="1.0")
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back"
        assert (
            "hooks:pre_switch: " in second.reason
            and "exited 4: migration check failed" in second.reason
        )
        assert not any(line.startswith("switch 2.0") for line in calls(tmp_path))
        assert (tmp_path / "rollback.txt").read_text().strip() == f"rolled back {second.id}"


class Site(FakeServer):
    """The service as the smoke checks see it: each version answers what the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.status = 200

    def handle(self, request: Request) -> Response:
        return Response(self.status, b'{"status": "pass"}', {"content-type": "application/json"})


class TestSmoke:
    def test_failing_smoke_check_rolls_back_naming_the_condition(self, tmp_path: Path) -> None:
        """A smoke check whose condition fails rolls back; the reason quotes what was observed."""
        site = Site().start()
        try:
            extra = f"""
[[deploy.smoke]]
name = "items"
url = "{site.url}/api/items"
conditions = ["status == 200", 'body.status == "pass"']
"""
            engine = make(tmp_path, extra)
            first = engine.deploy(version="1.0")
            assert first.status == "succeeded", first.reason
            site.status = 503
            second = engine.deploy(version="2.0")
        finally:
            site.stop()
        assert second.status == "rolled_back"
        assert second.reason.startswith("smoke: items (")
        assert "status == 200: observed 503 (failed)" in second.reason
        assert engine.driver.routes() == {first.id: 1.0}


class TestLock:
    def test_long_hook_keeps_the_lock(self, tmp_path: Path) -> None:
        """A hook longer than lock_timeout does not let another deploy in: the lock is renewed."""
        engine = make(
            tmp_path, '\n[deploy.hooks]\npre_deploy = ["sleep 2"]\n', lock='lock_timeout = "0.5s"'
        )
        other = DeployLock(engine.store, engine.lock.name, owner="ci@elsewhere:1")
        outcome: list[bool] = []

        def contend() -> None:
            time.sleep(1.2)
            outcome.append(other.try_acquire())

        thread = threading.Thread(target=contend)
        thread.start()
        release = engine.deploy(version="1.0")
        thread.join()
        assert release.status == "succeeded", release.reason
        assert outcome == [False]
        assert other.try_acquire(), "free once the deploy is over"
        other.release()


class TestGates:
    def test_failing_gate_stops_the_deploy(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A gate named in [deploy] gates runs the static checks; a failing one is named."""
        monkeypatch.delenv("SHOP_SECRET_KEY", raising=False)
        extra = """
[env.vars.SHOP_SECRET_KEY]
required = true
"""
        engine = make(tmp_path, extra.replace("[env.vars", "[env.vars"))
        engine.spec = engine.spec.model_copy(
            update={"deploy": engine.spec.deploy.model_copy(update={"gates": [1]})}
        )
        release = engine.deploy(version="1.0")
        assert release.status == "failed"
        assert release.reason.startswith("gates: ")
        assert "gate 1 NO-GO" in release.reason and "env.required" in release.reason
        assert not (tmp_path / "calls.log").exists(), "nothing was deployed"
        monkeypatch.setenv("SHOP_SECRET_KEY", "x" * 40)
        again = engine.deploy(version="1.0")
        assert again.status == "succeeded", again.reason
        gates = [s for s in engine.show(engine.releases(1)[0].id).steps if s.state == "gates"]
        assert "gate 1 GO" in gates[-1].message and gates[-1].detail["check_run"]


class TestNotifications:
    def test_deploy_events_reach_the_alert_channel(self, tmp_path: Path) -> None:
        """Start, success, rollback and failure go out through [alerts] channels, once each."""
        receiver = WebhookReceiver().start()
        try:
            extra = f"""
[alerts]
default_channels = ["hook"]

[alerts.channels.hook]
type = "webhook"
url = "{receiver.url}/hook"
"""
            engine = make(tmp_path, extra)
            (tmp_path / "unready-0.9").touch()
            broken = engine.deploy(version="0.9")
            good = engine.deploy(version="1.0")
            (tmp_path / "unready-2.0").touch()
            bad = engine.deploy(version="2.0", strategy=Strategy.IMMEDIATE)
            dispatcher = Dispatcher.from_spec(engine.spec.alerts, engine.store)
            report = asyncio.run(dispatcher.dispatch_once())
            assert report.failed == 0
            got = {
                (body["kind"], body.get("fields", {}).get("release", ""))
                for body in receiver.processed.values()
            }
        finally:
            receiver.stop()
        assert (broken.status, good.status, bad.status) == ("failed", "succeeded", "rolled_back")
        assert got == {
            ("deploy.started", broken.id),
            ("deploy.failed", broken.id),
            ("deploy.started", good.id),
            ("deploy.succeeded", good.id),
            ("deploy.started", bad.id),
            ("deploy.rolled_back", bad.id),
        }
        assert len(receiver.requests) == len(got) == 6
        texts = {json.dumps(body) for body in receiver.processed.values()}
        assert any("passed readiness" in t for t in texts)
