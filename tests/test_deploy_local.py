"""The local driver: its agent, supervised processes and proxy, as real processes.

The app here is tests/fixtures/tiny_app.py (it starts in milliseconds); the
example app under load is in test_deploy_e2e.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controltower.deploy.drivers.base import ReleaseInfo
from controltower.deploy.drivers.local import LocalDriver, build_argv, build_env
from controltower.deploy.local.agent import alive
from controltower.deploy.local.client import AgentClient
from controltower.exceptions import DriverError
from controltower.spec.deploy import LocalDriverSpec
from tests.conftest import ROOT, free_port
from tests.deploy_support import wait_until

TINY = ROOT / "tests" / "fixtures" / "tiny_app.py"


def make_driver(tmp_path: Path, **spec: Any) -> LocalDriver:
    options: dict[str, Any] = {
        "command": f"{{python}} {TINY} {{port}}",
        "proxy_port": free_port(),
        "state_dir": str(tmp_path / "state"),
        "env": {"TINY_VERSION": "{version}"},
        **spec,
    }
    return LocalDriver(
        LocalDriverSpec(**options), root=tmp_path, service="tiny", health_path="/health"
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDriver]:
    made = make_driver(tmp_path_factory.mktemp("agent"))
    made.prepare()
    yield made
    stop_everything(made)


@pytest.fixture
def driver(shared: LocalDriver) -> Iterator[LocalDriver]:
    """One agent for the module; each test starts from no instances and no routes."""
    yield shared
    shared.agent.call("route", weights={})
    for name in {i.release for i in shared.instances()}:
        shared.stop(name, drain=0)


@pytest.fixture
def own(tmp_path: Path) -> Iterator[LocalDriver]:
    """An agent of the test's own."""
    made = make_driver(tmp_path)
    made.prepare()
    yield made
    stop_everything(made)


def stop_everything(driver: LocalDriver) -> None:
    pids = [int(i.get("pid") or 0) for i in state_of(driver).get("instances", [])]
    if not driver.agent.shutdown(wait=20):
        info = json.loads((driver.state_dir / "agent.json").read_text())
        os.kill(int(info["pid"]), signal.SIGKILL)
    for pid in pids:
        if pid > 0 and alive(pid):
            os.killpg(pid, signal.SIGKILL)
    driver.close()


def state_of(driver: LocalDriver) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((driver.state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def release(name: str, **env: str) -> ReleaseInfo:
    return ReleaseInfo(id=name, version=f"v-{name}", env=env)


def running(driver: LocalDriver, release_id: str, count: int) -> None:
    wait_until(
        lambda: sum(i.state == "running" for i in driver.instances(release_id)) == count,
        what=f"{count} running instance(s) of {release_id}",
    )


def get(driver: LocalDriver, path: str = "/", timeout: float = 10.0) -> httpx.Response:
    return httpx.get(driver.public_url() + path, timeout=timeout)


class TestBuilders:
    def test_argv_fills_python_version_and_release(self) -> None:
        """The command template becomes an argument list; {port} is left for the agent."""
        argv = build_argv(
            "{python} -m uvicorn app:app --port {port} --tag {version}-{release}", release("r1")
        )
        assert argv == [
            sys.executable,
            "-m",
            "uvicorn",
            "app:app",
            "--port",
            "{port}",
            "--tag",
            "v-r1-r1",
        ]

    def test_env_layers_spec_release_and_tower_variables(self) -> None:
        """Spec env (with {version}) under the release's own variables, then TOWER_*."""
        spec = LocalDriverSpec(command="x", env={"APP_VERSION": "{version}", "A": "spec"})
        env = build_env(spec, ReleaseInfo("r1", "2.0", env={"A": "release"}))
        assert env == {
            "APP_VERSION": "2.0",
            "A": "release",
            "TOWER_RELEASE_ID": "r1",
            "TOWER_VERSION": "2.0",
        }

    def test_empty_command_is_refused(self, tmp_path: Path) -> None:
        """A local driver without a command says which key to set."""
        with pytest.raises(DriverError, match=r"\[deploy.local\] command is empty"):
            LocalDriver(LocalDriverSpec(), root=tmp_path, service="x", health_path="/")


class TestProcesses:
    def test_start_on_free_ports_with_port_in_env(self, driver: LocalDriver) -> None:
        """Instances run on their own ports, answer directly, and are listed with their pid."""
        started = driver.start(release("a"), 2)
        assert len(started) == 2
        running(driver, "a", 2)
        found = driver.instances("a")
        ports = {i.detail["port"] for i in found}
        assert len(ports) == 2
        for instance in found:
            assert httpx.get(f"http://{instance.address}/").text == "v-a"
            assert alive(int(instance.detail["pid"]))
        probe = driver.probe(found[0], "/health", 2.0)
        assert probe.ok and probe.detail == "GET /health: 200"

    def test_crashed_process_is_restarted(self, driver: LocalDriver) -> None:
        """Killing an app process makes the agent start it again on the same port."""
        driver.start(release("a"), 1)
        running(driver, "a", 1)
        driver.route({"a": 1.0})
        before = driver.instances("a")[0]
        os.killpg(int(before.detail["pid"]), signal.SIGKILL)
        wait_until(
            lambda: (
                (now := driver.instances("a"))[0].detail["restarts"] == 1
                and now[0].state == "running"
            ),
            what="restart",
        )
        after = driver.instances("a")[0]
        assert after.detail["pid"] != before.detail["pid"]
        assert after.detail["port"] == before.detail["port"]
        assert get(driver).text == "v-a"

    def test_crash_loop_is_a_fatal_probe(self, driver: LocalDriver) -> None:
        """A process that keeps exiting is reported as crash-looping, naming its log."""
        driver.start(release("bad", TINY_FAIL_START="1"), 1)
        instance = driver.instances("bad")[0]
        wait_until(
            lambda: driver.probe(instance, "/health", 1.0).fatal, deadline=30, what="crash loop"
        )
        probe = driver.probe(instance, "/health", 1.0)
        assert "crashed 3 times" in probe.detail and instance.id + ".log" in probe.detail

    def test_unhealthy_instance_fails_its_probe(self, driver: LocalDriver) -> None:
        """Readiness answering 503 is a failed (not fatal) probe."""
        driver.start(release("sick", TINY_HEALTH="fail"), 1)
        running(driver, "sick", 1)
        probe = driver.probe(driver.instances("sick")[0], "/health", 1.0)
        assert (probe.ok, probe.fatal, probe.detail) == (False, False, "GET /health: 503")


class TestRouting:
    def test_route_refuses_a_release_without_running_instances(self, driver: LocalDriver) -> None:
        """Routing to a release that runs nothing is refused and the table is unchanged."""
        with pytest.raises(DriverError, match="release ghost has no running instance"):
            driver.route({"ghost": 1.0})
        assert driver.routes() == {}

    def test_weighted_split_through_the_proxy(self, driver: LocalDriver) -> None:
        """A 75/25 split between two releases shows in what cookie-less requests get."""
        driver.start(release("a"), 1)
        driver.start(release("b"), 1)
        running(driver, "a", 1)
        running(driver, "b", 1)
        driver.route({"b": 0.25, "a": 0.75})
        assert driver.routes() == {"b": 0.25, "a": 0.75}
        with httpx.Client(base_url=driver.public_url()) as client:
            seen: Counter[str] = Counter()
            for _ in range(400):
                client.cookies.clear()
                seen[client.get("/").headers["x-tower-release"]] += 1
        assert 0.15 <= seen["b"] / 400 <= 0.35

    def test_new_instance_of_routed_release_waits_for_next_route(self, driver: LocalDriver) -> None:
        """An instance added to a release with traffic gets none until the engine routes again."""
        driver.start(release("a"), 1)
        running(driver, "a", 1)
        driver.route({"a": 1.0})
        driver.start(release("a"), 1)
        running(driver, "a", 2)
        with httpx.Client(base_url=driver.public_url()) as client:
            pids = {client.get("/").headers["x-pid"] for _ in range(30)}
            assert len(pids) == 1
            driver.route({"a": 1.0})
            pids = {client.get("/").headers["x-pid"] for _ in range(60)}
        assert len(pids) == 2

    def test_metrics_per_release(self, driver: LocalDriver) -> None:
        """The proxy's own counts: requests, 5xx and latency per release over a window."""
        driver.start(release("metered"), 1)
        running(driver, "metered", 1)
        driver.route({"metered": 1.0})
        with httpx.Client(base_url=driver.public_url()) as client:
            for _ in range(10):
                client.get("/status?code=503")
            for _ in range(30):
                client.get("/")
        metrics = driver.metrics("metered", 60)
        assert metrics is not None
        assert (metrics.requests, metrics.errors) == (40, 10)
        assert metrics.error_rate == pytest.approx(0.25)
        assert metrics.p95 is not None and metrics.p95 > 0
        assert driver.metrics("other", 60).requests == 0  # type: ignore[union-attr]


class TestStopping:
    def test_drain_lets_in_flight_requests_finish(self, driver: LocalDriver) -> None:
        """Stopping drains: a slow request in flight completes, then the process ends."""
        driver.start(release("old"), 1)
        driver.start(release("new"), 1)
        running(driver, "old", 1)
        running(driver, "new", 1)
        driver.route({"old": 1.0})
        old_pid = int(driver.instances("old")[0].detail["pid"])
        with httpx.Client(base_url=driver.public_url(), timeout=20) as client:
            answers: list[httpx.Response] = []
            slow = threading.Thread(target=lambda: answers.append(client.get("/slow?s=1.5")))
            slow.start()
            wait_until(
                lambda: state_inflight(driver, "old") == 1, what="the slow request in flight"
            )
            driver.route({"new": 1.0})
            started = time.monotonic()
            driver.stop("old", drain=10)
            took = time.monotonic() - started
            slow.join(10)
        assert answers and answers[0].status_code == 200 and answers[0].text == "v-old"
        assert 0.5 < took < 8
        assert driver.instances("old") == []
        assert not alive(old_pid)

    def test_drain_timeout_bounds_the_wait(self, driver: LocalDriver) -> None:
        """A request slower than the drain timeout does not hold the stop longer than that."""
        driver.start(release("old"), 1)
        running(driver, "old", 1)
        driver.route({"old": 1.0})
        slow = threading.Thread(
            target=lambda: _quietly(lambda: get(driver, "/slow?s=8", timeout=20))
        )
        slow.start()
        wait_until(lambda: state_inflight(driver, "old") == 1, what="the slow request in flight")
        started = time.monotonic()
        driver.stop("old", drain=1)
        took = time.monotonic() - started
        slow.join(20)
        assert 0.8 < took < 6
        assert driver.instances("old") == []

    def test_delayed_stop_and_keep(self, driver: LocalDriver) -> None:
        """A stop ``after`` seconds keeps the release warm; ``keep`` cancels it."""
        driver.start(release("warm"), 1)
        driver.start(release("gone"), 1)
        running(driver, "warm", 1)
        running(driver, "gone", 1)
        driver.stop("warm", drain=1, after=1.0)
        driver.stop("gone", drain=1, after=1.0)
        driver.keep("warm")
        wait_until(lambda: driver.instances("gone") == [], deadline=15, what="delayed stop")
        assert [i.state for i in driver.instances("warm")] == ["running"]

    def test_stop_count_and_ids(self, driver: LocalDriver) -> None:
        """``count`` stops that many instances of a release, ``ids`` exactly those."""
        driver.start(release("a"), 3)
        running(driver, "a", 3)
        driver.stop("a", count=1, drain=1)
        assert len(driver.instances("a")) == 2
        keep, drop = driver.instances("a")
        driver.stop("a", ids=[drop.id], drain=1)
        assert [i.id for i in driver.instances("a")] == [keep.id]


class TestAgentLifetime:
    def test_state_survives_a_new_tower_process(self, own: LocalDriver, tmp_path: Path) -> None:
        """Another driver on the same state directory sees the same instances and split."""
        own.start(release("a"), 1)
        running(own, "a", 1)
        own.route({"a": 1.0})
        other = make_driver(tmp_path, proxy_port=own.spec.proxy_port)
        other.prepare()
        assert [i.id for i in other.instances()] == [i.id for i in own.instances()]
        assert other.routes() == {"a": 1.0}
        other.close()

    def test_restarted_agent_adopts_running_processes(
        self, own: LocalDriver, tmp_path: Path
    ) -> None:
        """After the agent dies, the next command starts one that adopts the apps and routes."""
        own.start(release("a"), 2)
        running(own, "a", 2)
        own.route({"a": 1.0})
        pids = sorted(int(i.detail["pid"]) for i in own.instances("a"))
        info = json.loads((own.state_dir / "agent.json").read_text())
        os.kill(int(info["pid"]), signal.SIGKILL)
        wait_until(lambda: not alive(int(info["pid"])), what="agent gone")
        assert all(alive(pid) for pid in pids), "the apps outlive their agent"
        fresh = make_driver(tmp_path, proxy_port=own.spec.proxy_port)
        fresh.prepare()
        running(fresh, "a", 2)
        assert sorted(int(i.detail["pid"]) for i in fresh.instances("a")) == pids
        assert fresh.routes() == {"a": 1.0}
        assert get(fresh).text == "v-a"
        fresh.close()

    def test_control_channel_needs_the_token(self, own: LocalDriver) -> None:
        """The control port refuses a request without the token from agent.json (mode 0600)."""
        path = own.state_dir / "agent.json"
        assert path.stat().st_mode & 0o777 == 0o600
        info = json.loads(path.read_text())
        with socket.create_connection(("127.0.0.1", int(info["control_port"])), timeout=5) as sock:
            sock.sendall(b'{"op": "list", "token": "wrong"}\n')
            reply = json.loads(sock.makefile().readline())
        assert reply == {"ok": False, "error": "bad token"}

    def test_proxy_port_mismatch_is_explained(self, own: LocalDriver, tmp_path: Path) -> None:
        """A spec whose proxy_port differs from the running agent's says how to fix it."""
        other = make_driver(tmp_path, proxy_port=free_port())
        with pytest.raises(DriverError, match="tower deploy agent stop"):
            other.prepare()

    def test_shutdown_stops_every_process(self, tmp_path: Path) -> None:
        """Stopping the agent stops the proxy and all app processes."""
        made = make_driver(tmp_path)
        made.prepare()
        made.start(release("a"), 2)
        running(made, "a", 2)
        pids = [int(i.detail["pid"]) for i in made.instances()]
        assert AgentClient(made.state_dir).shutdown(wait=20)
        assert not any(alive(pid) for pid in pids)
        with pytest.raises(DriverError, match="the local agent is not running"):
            made.instances()


def state_inflight(driver: LocalDriver, release_id: str) -> int:
    reply = driver.agent.call("list")
    return sum(int(i["inflight"]) for i in reply["instances"] if i["release"] == release_id)


def _quietly(call: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()


class TestAgentCommands:
    def test_start_and_stop(self, tmp_path: Path) -> None:
        """`tower deploy agent start` starts the agent; `stop` ends it and its processes."""
        from typer.testing import CliRunner

        from controltower.cli.main import app

        port = free_port()
        spec = tmp_path / "tower.toml"
        spec.write_text(
            '[service]\nname = "tiny"\n[deploy]\ndriver = "local"\n[deploy.local]\n'
            f'command = "{{python}} {TINY} {{port}}"\nproxy_port = {port}\nstate_dir = "state"\n'
        )
        runner = CliRunner()
        started = runner.invoke(
            app, ["deploy", "agent", "start", "--spec", str(spec), "--format", "json"]
        )
        assert started.exit_code == 0, started.output
        data = json.loads(started.stdout)
        assert data["proxy"] == f"http://127.0.0.1:{port}" and alive(int(data["pid"]))
        stopped = runner.invoke(app, ["deploy", "agent", "stop", "--spec", str(spec)])
        assert stopped.exit_code == 0 and "agent stopped" in stopped.stdout
        assert not alive(int(data["pid"]))
        again = runner.invoke(app, ["deploy", "agent", "stop", "--spec", str(spec)])
        assert "agent was not running" in again.stdout
