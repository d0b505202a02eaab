"""``tower demo``: its workspace spec, its parts, and one whole run end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from controltower.demo.receiver import Receiver
from controltower.demo.run import describe
from controltower.demo.traffic import Traffic
from controltower.demo.workspace import Ports, demo_spec, example_dir, pick_ports
from controltower.spec import parse_spec
from tests.conftest import EXAMPLE_APP, free_port

PORTS = Ports(proxy=41001, server=41002, receiver=41003, closed=41004)


def _spec_text(tmp_path: Path) -> str:
    return demo_spec(
        (EXAMPLE_APP / "tower.toml").read_text(),
        app_dir=EXAMPLE_APP,
        workspace=tmp_path,
        ports=PORTS,
    )


class TestDemoSpec:
    def test_points_everything_at_the_demo_ports(self, tmp_path: Path) -> None:
        """The app's URL, proxy, monitors, server and channel all use the demo's ports."""
        spec = parse_spec(_spec_text(tmp_path), source=str(tmp_path / "tower.toml"))
        assert spec.deploy.local.proxy_port == PORTS.proxy
        assert spec.server.port == PORTS.server
        urls = {m.name: m.url for m in spec.monitors if m.url}
        assert urls["health"] == f"http://127.0.0.1:{PORTS.proxy}/api/health"
        assert urls["home"] == f"http://127.0.0.1:{PORTS.proxy}/"
        channel = spec.alerts.channels["demo"]
        assert channel.type.value == "webhook"
        assert spec.alerts.default_channels == ["demo"]
        assert [p.name for p in spec.server.projects] == ["example"]

    def test_the_app_runs_from_the_example_with_its_database_in_the_workspace(
        self, tmp_path: Path
    ) -> None:
        """Processes start in the example folder; the database lives in the workspace."""
        spec = parse_spec(_spec_text(tmp_path), source=str(tmp_path / "tower.toml"))
        assert Path(spec.deploy.local.cwd) == EXAMPLE_APP
        assert spec.deploy.local.env["APP_DATABASE"] == str(tmp_path / "example.db")
        assert spec.deploy.local.env["APP_VERSION"] == "{version}"

    def test_a_down_dependency_is_monitored(self, tmp_path: Path) -> None:
        """A TCP monitor on a closed port gives the demo an incident to show."""
        spec = parse_spec(_spec_text(tmp_path), source=str(tmp_path / "tower.toml"))
        search = next(m for m in spec.monitors if m.name == "search")
        assert search.type.value == "tcp" and search.port == PORTS.closed
        assert search.failure_threshold * search.interval <= 15

    def test_keeps_the_example_comments(self, tmp_path: Path) -> None:
        """The workspace spec is the example's, edited in place, so its comments survive."""
        text = _spec_text(tmp_path)
        first_comment = next(
            line
            for line in (EXAMPLE_APP / "tower.toml").read_text().splitlines()
            if line.startswith("#")
        )
        assert first_comment in text

    def test_finds_the_example_app(self) -> None:
        """In a checkout the example app is examples/app."""
        assert example_dir() == EXAMPLE_APP

    def test_ports_are_distinct(self) -> None:
        """The four demo ports never collide."""
        ports = pick_ports()
        assert len({ports.proxy, ports.server, ports.receiver, ports.closed}) == 4


class TestParts:
    def test_receiver_collects_posts(self) -> None:
        """The notification receiver keeps each JSON body and tells its listener."""
        heard: list[str] = []
        receiver = Receiver(free_port(), lambda body: heard.append(describe(body))).start()
        try:
            port = receiver._server.server_address[1]
            httpx.post(
                f"http://127.0.0.1:{port}/notify", json={"kind": "firing", "title": "db down"}
            )
            assert receiver.snapshot() == [{"kind": "firing", "title": "db down"}]
            assert heard == ["firing: db down"]
        finally:
            receiver.stop()

    def test_notifications_are_shown_as_sent(self, tmp_path: Path) -> None:
        """A notification's text reaches the terminal as sent, brackets included."""
        from rich.console import Console

        from controltower.demo.run import Demo

        console = Console(record=True, width=200)
        demo = Demo(tmp_path, console=console, ports=PORTS)
        demo._notified({"kind": "incident.firing", "title": "[critical] search is failing"})
        assert "incident.firing: [critical] search is failing" in console.export_text()
        assert demo.notifications() == ["incident.firing: [critical] search is failing"]

    def test_traffic_counts_failures(self) -> None:
        """Background traffic counts 5xx answers and refused connections as failures."""
        closed = free_port()
        traffic = Traffic(f"http://127.0.0.1:{closed}", ["/"], rate=50).start(workers=2)
        time.sleep(0.5)
        totals = traffic.stop()
        assert totals.requests > 0 and totals.failed == totals.requests
        assert "ConnectError" in totals.by_status


class TestUsage:
    def test_short_password_is_refused_before_anything_starts(self, tmp_path: Path) -> None:
        """A dashboard password under 10 characters is bad usage: exit 2, no workspace, not echoed."""
        workspace = tmp_path / "demo"
        done = subprocess.run(
            [sys.executable, "-m", "controltower", "demo", "--exit", "--dir", str(workspace),
             "--password", "hunter2"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2
        assert "needs at least 10 characters" in done.stderr
        assert "hunter2" not in done.stdout + done.stderr
        assert not workspace.exists()


@pytest.mark.slow
class TestDemoEndToEnd:
    def test_demo_runs_every_step(self, tmp_path: Path) -> None:
        """`tower demo --exit` checks, ships a good canary, rolls a bad one back, ingests
        Sentry SDK errors, sees an incident, and stops everything it started."""
        workspace = tmp_path / "demo"
        env = {k: v for k, v in os.environ.items() if k != "TOWER_DATABASE_URL"}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "controltower",
                "demo",
                "--exit",
                "--format",
                "json",
                "--dir",
                str(workspace),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=280,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout)
        steps = {step["name"]: step for step in summary["steps"]}
        assert list(steps) == [
            "serve",
            "first",
            "check",
            "canary",
            "rollback",
            "errors",
            "incident",
        ]
        assert all(step["ok"] for step in steps.values()), steps
        assert "error_rate" in steps["rollback"]["detail"]
        assert steps["errors"]["data"]["issues"] >= 3
        traffic = summary["traffic"]
        assert traffic["requests"] > 200
        assert traffic["failed"] < 0.05 * traffic["requests"]
        assert any("search" in line for line in summary["notifications"])
        assert summary["login"]["password"] not in done.stderr
        # everything it started has stopped
        for url in (summary["app"], summary["dashboard"]):
            port = int(url.rstrip("/").rsplit(":", 1)[1])
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, f"{url} still answers"
        assert (workspace / "example.db").is_file()
