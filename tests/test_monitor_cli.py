"""``tower monitor``, ``tower monitor test|status``, ``tower incidents`` and ``tower silence``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from controltower.cli.main import app
from controltower.exceptions import TowerError
from controltower.monitor.alerting import Alerting
from controltower.monitor.probes import CheckOutcome
from controltower.monitor.registry import sync_monitors
from controltower.monitor.results import Pending, ResultWriter
from controltower.spec import load_spec
from controltower.store import Store
from tests.monitor_support import Target


class Invocation:
    """What ``tower`` would do: a TowerError becomes its exit code and message."""

    def __init__(self, result: Result) -> None:
        self.output = result.output
        self.exit_code = result.exit_code
        if isinstance(result.exception, TowerError):
            self.exit_code = result.exception.exit_code
            self.output += f"error: {result.exception}"

    def json(self) -> object:
        return json.loads(self.output)


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    yield server
    server.down()


@pytest.fixture
def project(tmp_path: Path, target: Target) -> Path:
    spec = tmp_path / "tower.toml"
    spec.write_text(
        f"""
[service]
name = "shop"

[store]
url = "sqlite:///{tmp_path / "tower.db"}"

[alerts]
default_channels = ["ops"]

[alerts.channels.ops]
type = "webhook"
url = "http://127.0.0.1:9/hook"

[[monitors]]
name = "api"
url = "{target.url}/health"
interval = "1s"
failure_threshold = 1
slo = "99%"
conditions = ["status == 200", 'body.status == "pass"', "latency < 2s"]
warning = ["latency < 1s"]

[[monitors]]
name = "web"
url = "{target.url}/"
"""
    )
    return spec


def tower(spec: Path, *args: str) -> Invocation:
    return Invocation(CliRunner().invoke(app, [*args, "--spec", str(spec)]))


def fail_api(spec: Path, at: datetime) -> int:
    """Record a failing check of ``api`` and run an alerting pass: one firing incident."""
    loaded = load_spec(spec)
    with Store.open(loaded.store.url.get_secret_value() if loaded.store.url else None) as store:
        service, ids = sync_monitors(store, loaded)
        outcome = CheckOutcome("api", at, "critical", 0.01, {}, error="HTTP 503")
        ResultWriter(store).flush([Pending(ids["api"], outcome, None, 1, 1)])
        alerting = Alerting(
            store,
            service_id=service,
            service="shop",
            environment="default",
            monitors=loaded.monitors,
            alerts=loaded.alerts,
        )
        alerting.run_pass(at)
        return service


class TestHelp:
    @pytest.mark.parametrize(
        "command",
        [
            ["monitor"],
            ["monitor", "test"],
            ["monitor", "status"],
            ["incidents", "list"],
            ["incidents", "show"],
            ["incidents", "ack"],
            ["incidents", "resolve"],
            ["silence", "add"],
            ["silence", "list"],
            ["silence", "expire"],
        ],
    )
    def test_examples_and_exit_codes(self, command: list[str]) -> None:
        """Every command's --help gives examples, its exit codes and --format json."""
        result = CliRunner().invoke(app, [*command, "--help"])
        assert result.exit_code == 0
        assert "Examples:" in result.output and "$ tower " + command[0] in result.output
        assert "Exit codes:" in result.output
        assert "--format" in result.output


class TestMonitorTest:
    def test_shows_each_condition_with_what_it_saw(self, project: Path) -> None:
        """A passing monitor lists its conditions, observed values and verdicts, exit 0."""
        result = tower(project, "monitor", "test", "api")
        assert result.exit_code == 0, result.output
        for text in ("status == 200", 'body.status == "pass"', "latency < 2s", "pass"):
            assert text in result.output
        assert "api: ok" in result.output

    def test_json_and_failure(self, project: Path, target: Target) -> None:
        """A failing check exits 1; JSON gives each condition with ok and observed."""
        target.status = 503
        result = tower(project, "monitor", "test", "api", "--format", "json")
        assert result.exit_code == 1
        data = result.json()
        assert isinstance(data, dict)
        assert data["level"] == "critical" and data["ok"] is False
        status = next(c for c in data["conditions"] if c["condition"] == "status == 200")
        assert status == {
            "kind": "condition",
            "condition": "status == 200",
            "ok": False,
            "observed": 503,
        }
        assert any(c["kind"] == "warning" for c in data["conditions"])

    def test_default_conditions_are_shown(self, project: Path) -> None:
        """A monitor without conditions is judged, and shown, with its type's defaults."""
        result = tower(project, "monitor", "test", "web", "--format", "json")
        data = result.json()
        assert isinstance(data, dict)
        assert [c["condition"] for c in data["conditions"]] == ["status < 400"]

    def test_unknown_monitor_is_usage_error(self, project: Path) -> None:
        """Naming a monitor that is not declared exits 2 and lists the declared ones."""
        result = tower(project, "monitor", "test", "nope")
        assert result.exit_code == 2
        assert "api, web" in result.output


class TestMonitorStatus:
    def test_uptime_slo_and_alerts(self, project: Path) -> None:
        """Status shows uptime per window and SLO budget, and exits 1 while an alert fires."""
        now = datetime.now(UTC)
        result = tower(project, "monitor", "status", "--format", "json")
        assert result.exit_code == 0, result.output
        data = result.json()
        assert isinstance(data, list)
        assert [item["name"] for item in data] == ["api", "web"]
        assert data[0]["uptime"] == {"1h": None, "24h": None, "7d": None, "30d": None}
        fail_api(project, now - timedelta(minutes=5))
        result = tower(project, "monitor", "status", "--format", "json")
        assert result.exit_code == 1
        data = result.json()
        assert isinstance(data, list)
        api = data[0]
        assert (api["level"], api["alert"], api["slo"]) == ("critical", "firing", 0.99)
        assert api["uptime"]["1h"] == 0.0 and api["checks_30d"] == 1
        assert api["budget_remaining"] < 0
        text = tower(project, "monitor", "status")
        assert "alerting: api" in text.output and "0.00%" in text.output


class TestIncidents:
    def test_list_ack_resolve(self, project: Path) -> None:
        """An incident is listed, acknowledged and resolved, with its timeline, by the CLI."""
        fail_api(project, datetime.now(UTC))
        listed = tower(project, "incidents", "list", "--format", "json").json()
        assert isinstance(listed, list) and len(listed) == 1
        incident = listed[0]
        assert (incident["status"], incident["monitors"]) == ("firing", ["api"])
        number = str(incident["id"])
        acked = tower(project, "incidents", "ack", number, "--actor", "ana", "--format", "json")
        assert acked.exit_code == 0, acked.output
        view = acked.json()
        assert isinstance(view, dict)
        assert (view["status"], view["acknowledged_by"]) == ("acknowledged", "ana")
        resolved = tower(project, "incidents", "resolve", number, "--reason", "fixed by hand")
        assert resolved.exit_code == 0, resolved.output
        assert "resolved" in resolved.output and "fixed by hand" in resolved.output
        assert tower(project, "incidents", "list", "--format", "json").json() == []
        everything = tower(project, "incidents", "list", "--status", "all", "--format", "json")
        data = everything.json()
        assert isinstance(data, list)
        kinds = [entry["kind"] for entry in data[0]["timeline"]]
        assert kinds[:2] == ["opened", "firing"] and kinds[-2:] == ["acknowledged", "resolved"]
        again = tower(project, "incidents", "ack", number)
        assert again.exit_code == 1 and "already resolved" in again.output

    def test_no_such_incident(self, project: Path) -> None:
        """Acting on an incident that does not exist exits 1 and says where to look."""
        for command in ("ack", "resolve", "show"):
            result = tower(project, "incidents", command, "404")
            assert result.exit_code == 1 and "no incident #404" in result.output


class TestSilence:
    def test_add_list_expire(self, project: Path) -> None:
        """A silence is added with matchers and a duration, listed, and expired."""
        added = tower(
            project, "silence", "add", "-m", "monitor=api", "--duration", "2h",
            "--comment", "migrating", "--format", "json",
        )  # fmt: skip
        assert added.exit_code == 0, added.output
        silence = added.json()
        assert isinstance(silence, dict)
        assert silence["matchers"] == {"monitor": "api"} and silence["active"] is True
        listed = tower(project, "silence", "list")
        assert "monitor=api" in listed.output and "migrating" in listed.output
        expired = tower(project, "silence", "expire", str(silence["id"]))
        assert expired.exit_code == 0 and "expired silence" in expired.output
        assert tower(project, "silence", "list", "--format", "json").json() == []
        everything = tower(project, "silence", "list", "--all", "--format", "json").json()
        assert isinstance(everything, list) and everything[0]["active"] is False

    def test_bad_input(self, project: Path) -> None:
        """A matcher that is not key=value or a bad duration exits 2; an unknown id exits 1."""
        assert tower(project, "silence", "add", "-m", "monitor").exit_code == 2
        assert tower(project, "silence", "add", "-m", "a=b", "--duration", "soon").exit_code == 2
        assert tower(project, "silence", "add", "-m", "a=b", "--duration", "0s").exit_code == 2
        assert tower(project, "silence", "expire", "99").exit_code == 1


@pytest.mark.slow
class TestRun:
    def test_runs_for_a_duration_and_reports(self, project: Path, tmp_path: Path) -> None:
        """`tower monitor --duration` checks, serves heartbeats, stops cleanly with a JSON summary."""
        done = subprocess.run(
            [
                sys.executable, "-m", "controltower", "monitor", "--spec", str(project),
                "--listen", "127.0.0.1:0", "--duration", "3", "--format", "json",
            ],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        stats = json.loads(done.stdout)
        assert stats["monitors"] == 2 and stats["checks"] >= 2 and stats["leader"] is True
        assert stats["written"] == stats["checks"]

    def test_port_in_use_is_explained(self, project: Path, tmp_path: Path) -> None:
        """A heartbeat port already taken is a usage error that says what to do."""
        import socket

        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = taken.getsockname()[1]
            done = subprocess.run(
                [
                    sys.executable, "-m", "controltower", "monitor", "--spec", str(project),
                    "--listen", f"127.0.0.1:{port}", "--duration", "1",
                ],
                capture_output=True, text=True, timeout=60, cwd=tmp_path,
            )  # fmt: skip
        assert done.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
        assert "--listen" in done.stderr
