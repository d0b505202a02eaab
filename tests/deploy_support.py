"""The example app deployed by the local driver, for the deploy tests.

``LocalSite(tmp)`` writes a tower.toml next to nothing but itself: the app runs
from examples/app, the agent's state, the store and the app's database live in
``tmp``, and the proxy listens on a free port. ``close()`` stops the agent and
every process it started, whatever state the test left them in.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from controltower.deploy import Engine, open_engine
from controltower.deploy.local.client import AgentClient
from controltower.spec import Spec, load_spec
from tests.conftest import EXAMPLE_APP, free_port
from tests.deploy_load import LoadResult

TOWER = str(Path(sys.executable).parent / "tower")
RATE = 200.0

SPEC = """
[service]
name = "example"
port = 8000

[environments.local]
url = "http://127.0.0.1:{proxy_port}"

[health]
readiness = "/api/health"
timeout = "2s"

[deploy]
driver = "local"
strategy = "{strategy}"
instances = {instances}
max_unavailable = 1
drain_timeout = "5s"
warm_window = "{warm_window}"

[deploy.local]
command = "{{python}} -m uvicorn app:app --host 127.0.0.1 --port {{port}} --no-access-log --no-server-header --log-level warning"
cwd = "{app}"
proxy_port = {proxy_port}
state_dir = "{state_dir}"

[deploy.local.env]
APP_VERSION = "{{version}}"
APP_DATABASE = "{database}"

[deploy.health]
consecutive = 2
deadline = "{health_deadline}"
interval = "200ms"

[deploy.analysis]
conditions = [{conditions}]
interval = "{interval}"
min_requests = 20
{analysis}
{steps}
[[deploy.smoke]]
path = "/api/health"
conditions = ["status == 200", 'body.status == "pass"']
{extra}
"""


class LocalSite:
    """A tower.toml for the example app on the local driver, and its cleanup."""

    def __init__(self, root: Path, app: Path = EXAMPLE_APP) -> None:
        self.root = root
        self.app = app
        self.proxy_port = free_port()
        self.state_dir = root / "local"
        self.spec_path = root / "tower.toml"
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        self.write()

    def write(
        self,
        *,
        strategy: str = "canary",
        instances: int = 2,
        steps: list[tuple[str, str | None]] | None = None,
        conditions: list[str] | None = None,
        interval: str = "4s",
        warm_window: str = "10m",
        health_deadline: str = "30s",
        extra: str = "",
        analysis: str = "",
    ) -> Path:
        chosen = steps if steps is not None else [("5%", "4s")]
        step_text = "".join(
            f'\n[[deploy.steps]]\nweight = "{w}"\n' + (f'pause = "{p}"\n' if p else "")
            for w, p in chosen
        )
        cond = conditions if conditions is not None else ["error_rate < 2%"]
        self.spec_path.write_text(
            SPEC.format(
                strategy=strategy,
                instances=instances,
                warm_window=warm_window,
                app=self.app,
                proxy_port=self.proxy_port,
                state_dir=self.state_dir,
                database=self.root / "app.db",
                health_deadline=health_deadline,
                conditions=", ".join(json.dumps(c) for c in cond),
                interval=interval,
                steps=step_text,
                extra=extra,
                analysis=analysis,
            )
        )
        return self.spec_path

    def spec(self) -> Spec:
        return load_spec(self.spec_path, env="local")

    def engine(self, **options: Any) -> Engine:
        return open_engine(self.spec(), actor="tester", **options)

    def tower(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 180.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the real ``tower`` command on this site's spec."""
        return run_tower(self.root, *args, env=env, timeout=timeout, environment="local")

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.state_dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return data

    def close(self) -> None:
        client = AgentClient(self.state_dir)
        info_path = self.state_dir / "agent.json"
        pids = [int(i.get("pid") or 0) for i in self.state().get("instances", [])]
        agent_pid = 0
        with contextlib.suppress(OSError, ValueError):
            agent_pid = int(json.loads(info_path.read_text())["pid"])
        if not client.shutdown(wait=30):
            _kill(agent_pid, group=False)
        for pid in pids:
            _kill(pid, group=True)


def run_tower(
    root: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 180.0,
    environment: str = "production",
) -> subprocess.CompletedProcess[str]:
    """The real ``tower`` command on ``root/tower.toml`` in another process."""
    return subprocess.run(
        [TOWER, *args, "--spec", str(root / "tower.toml"), "--env", environment],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=root,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def _kill(pid: int, *, group: bool) -> None:
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def wait_until(predicate: Any, deadline: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate`` with backoff until it is true or the deadline passes."""
    end = time.monotonic() + deadline
    delay = 0.05
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise AssertionError(f"{what} not reached within {deadline:g}s")


def assert_clean(result: LoadResult) -> None:
    """Not one request failed, and the load really ran at the rate asked for."""
    assert result.failed == 0, f"{result.failed} of {result.sent} failed: {result.failures[:5]}"
    assert result.rate >= RATE * 0.95, f"the load ran at {result.rate:.0f} requests/s"
