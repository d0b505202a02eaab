"""``tower demo``: the example app checked, shipped and watched on this machine.

The steps, each a real use of tower with no outside service:

1. start ``tower serve`` (API, dashboard, status page, monitors, error ingestion)
   for a workspace spec built from the example app's tower.toml;
2. deploy release 1.0.0 of the example app with the local driver (first deploy:
   immediate) behind tower's proxy, and start steady background traffic;
3. run ``tower check`` against the live app, gated on gate 2, and store the run;
4. deploy 1.1.0 as a canary: it walks every traffic step and is promoted;
5. deploy 1.2.0, which answers 5xx to a share of requests, as a canary: the
   analysis fails and the deploy rolls back by itself;
6. send errors through the real Sentry SDK to tower serve's DSN;
7. wait for the monitors to open an incident for a dependency that is down,
   and for its notification;
8. print where the dashboard is, and keep it running until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from controltower.clock import system_clock
from controltower.demo.receiver import Receiver
from controltower.demo.traffic import Traffic
from controltower.demo.workspace import PROJECT, Ports, pick_ports, prepare
from controltower.exceptions import TowerError

GOOD_VERSION = "1.1.0"
BAD_VERSION = "1.2.0"
BAD_ERROR_RATE = "0.3"
USER = "demo"


class DemoError(TowerError):
    """A demo step did not behave as the demo expects."""

    exit_code = 1


@dataclass
class StepResult:
    name: str
    ok: bool
    detail: str
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "seconds": round(self.seconds, 2),
            **({"data": self.data} if self.data else {}),
        }


@dataclass
class DemoSummary:
    workspace: str
    dashboard: str
    status_page: str
    api: str
    app: str
    user: str
    password: str
    dsn: str
    steps: list[StepResult]
    traffic: dict[str, Any]
    notifications: list[str]

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "workspace": self.workspace,
            "dashboard": self.dashboard,
            "status_page": self.status_page,
            "api": self.api,
            "app": self.app,
            "login": {"user": self.user, "password": self.password},
            "dsn": self.dsn,
            "steps": [step.to_dict() for step in self.steps],
            "traffic": self.traffic,
            "notifications": self.notifications,
        }


def tower_argv(*args: str) -> list[str]:
    """``tower`` as a child process of this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "controltower", *args]


def describe(notification: dict[str, Any]) -> str:
    """One line for a webhook notification body (its documented ``kind`` and ``title``)."""
    kind, title = notification.get("kind"), notification.get("title")
    if kind and title:
        return f"{kind}: {title}"
    return str(title or kind or json.dumps(notification)[:120])


class Demo:
    """Runs the demo's steps in ``workspace``; ``close()`` stops everything it started."""

    def __init__(
        self,
        workspace: Path,
        *,
        console: Console,
        password: str | None = None,
        rate: float = 40.0,
        ports: Ports | None = None,
        incident_wait: float = 60.0,
    ) -> None:
        self.workspace = workspace.resolve()
        self.console = console
        self.password = password or secrets.token_urlsafe(9)
        self.rate = rate
        self.ports = ports or pick_ports()
        self.incident_wait = incident_wait
        self.steps: list[StepResult] = []
        self.spec_path = self.workspace / "tower.toml"
        self.server: subprocess.Popen[str] | None = None
        self.server_log: Path = self.workspace / "serve.log"
        self.traffic: Traffic | None = None
        self.receiver: Receiver | None = None
        self.dsn = ""
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.proxy}"

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.server}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("TOWER_DATABASE_URL", None)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _tower(
        self, *args: str, timeout: float = 300.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            tower_argv(*args),
            cwd=self.workspace,
            env=self._env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @contextlib.contextmanager
    def _step(self, title: str) -> Iterator[Callable[[str], None]]:
        """Show ``title`` with a spinner while the step runs; the body calls ``say`` with news."""
        with self.console.status(title) as status:

            def say(news: str) -> None:
                status.update(f"{title} [dim]{escape(news)}[/dim]")

            yield say

    def _record(self, name: str, ok: bool, detail: str, started: float, **data: Any) -> None:
        step = StepResult(name, ok, detail, system_clock.monotonic() - started, data)
        self.steps.append(step)
        mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
        self.console.print(
            f" {mark} {escape(detail)} [dim]({step.seconds:.1f}s)[/dim]",
            highlight=False,
            soft_wrap=True,
        )

    def _notified(self, body: dict[str, Any]) -> None:
        with self._lines_lock:
            self._lines.append(describe(body))
        self.console.print(
            f"   [cyan]notification[/cyan] {escape(describe(body))}", highlight=False
        )

    # -- steps ------------------------------------------------------------------

    def start(self) -> None:
        """Write the workspace and start the notification receiver and tower serve."""
        started = system_clock.monotonic()
        self._stop_leftover_agent()
        prepare(self.workspace, self.ports)
        self.receiver = Receiver(self.ports.receiver, self._notified).start()
        with self._step("starting tower serve"):
            self._tower("env", "example", "--spec", str(self.spec_path), timeout=60)
            added = self._tower(
                "user", "add", USER, "--password-stdin", input=self.password + "\n", timeout=60
            )
            if added.returncode != 0:
                raise DemoError(f"could not add the dashboard user: {added.stderr.strip()}")
            log = self.server_log.open("w")
            self.server = subprocess.Popen(
                tower_argv(
                    "serve",
                    "--spec",
                    str(self.spec_path),
                    "--format",
                    "json",
                    "--log-level",
                    "warning",
                ),
                cwd=self.workspace,
                env=self._env(),
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
            assert self.server.stdout is not None
            info = self._read_json(self.server.stdout)
            self.dsn = str(info.get("projects", {}).get(PROJECT, ""))
            self._wait_http(f"{self.server_url}/healthz", "tower serve", deadline=30)
        self._record(
            "serve",
            True,
            f"tower serve is up at {self.server_url} (API, dashboard, monitors)",
            started,
        )

    def _read_json(self, stream: Any) -> dict[str, Any]:
        """The JSON document ``tower serve --format json`` prints first."""
        text = ""
        for _ in range(200):
            line = stream.readline()
            if not line:
                break
            text += line
            try:
                loaded = json.loads(text)
            except ValueError:
                continue
            if isinstance(loaded, dict):
                return loaded
        raise DemoError(
            f"tower serve did not start: {text.strip()[:200] or 'no output'}",
            hint=f"see {self.server_log}",
        )

    def _stop_leftover_agent(self) -> None:
        if self.spec_path.exists():
            self._tower("deploy", "agent", "stop", "--spec", str(self.spec_path), timeout=60)

    def _wait_http(self, url: str, what: str, *, deadline: float) -> None:
        end = system_clock.monotonic() + deadline
        delay = 0.05
        last = ""
        while system_clock.monotonic() < end:
            if self.server is not None and self.server.poll() is not None:
                raise DemoError(
                    f"{what} exited (code {self.server.returncode})", hint=f"see {self.server_log}"
                )
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        raise DemoError(f"{what} did not answer at {url} within {deadline:.0f}s ({last})")

    def _deploy(self, title: str, version: str, env: dict[str, str]) -> Any:
        from controltower.deploy import open_engine
        from controltower.spec import load_spec

        spec = load_spec(self.spec_path)
        with self._step(title) as say:
            engine = open_engine(
                spec, actor="tower demo", on_step=lambda state, message: say(f"{state}: {message}")
            )
            try:
                return engine.deploy(version=version, env=env)
            finally:
                engine.driver.close()
                engine.store.close()

    def first_release(self) -> None:
        started = system_clock.monotonic()
        release = self._deploy("deploying 1.0.0 with the local driver", "1.0.0", {})
        ok = release.status == "succeeded"
        self._record(
            "first",
            ok,
            f"released 1.0.0 (the first release goes in at once) behind tower's proxy at {self.app_url}"
            if ok
            else f"1.0.0 did not deploy: {release.reason}",
            started,
            release=release.id,
        )
        if not ok:
            raise DemoError(f"the first release failed: {release.reason}")
        self.traffic = Traffic(
            self.app_url, ["/api/items", "/", "/api/items"], rate=self.rate
        ).start()

    def check(self) -> None:
        started = system_clock.monotonic()
        with self._step(f"tower check --url {self.app_url} --gate 2"):
            done = self._tower(
                "check",
                "--spec",
                str(self.spec_path),
                "--url",
                self.app_url,
                "--gate",
                "2",
                "--format",
                "json",
            )
        try:
            report = json.loads(done.stdout)
        except ValueError:
            self._record(
                "check", False, f"tower check failed: {done.stderr.strip()[-300:]}", started
            )
            return
        overall = report.get("score", {}).get("overall")
        gates = report.get("gates", {})
        verdicts = ", ".join(
            f"gate {g} {'GO' if v.get('passed') else 'NO-GO'}" for g, v in sorted(gates.items())
        )
        score = (
            f"readiness {overall:.0f}%" if isinstance(overall, (int, float)) else "readiness n/a"
        )
        self._record(
            "check",
            done.returncode == 0,
            f"tower check: {score}, {verdicts}",
            started,
            exit_code=done.returncode,
        )

    def good_canary(self) -> None:
        started = system_clock.monotonic()
        release = self._deploy(
            f"canary {GOOD_VERSION}: shifting traffic step by step", GOOD_VERSION, {}
        )
        ok = release.status == "succeeded"
        self._record(
            "canary",
            ok,
            f"canary {GOOD_VERSION} passed every analysis and was promoted"
            if ok
            else f"canary {GOOD_VERSION} ended {release.status}: {release.reason}",
            started,
            release=release.id,
            status=release.status,
        )

    def bad_canary(self) -> None:
        started = system_clock.monotonic()
        share = f"{float(BAD_ERROR_RATE):.0%}"
        release = self._deploy(
            f"canary {BAD_VERSION} (answers 5xx to {share} of requests)",
            BAD_VERSION,
            {"APP_ERROR_RATE": BAD_ERROR_RATE},
        )
        ok = release.status == "rolled_back"
        self._record(
            "rollback",
            ok,
            f"canary {BAD_VERSION} was rolled back by itself: {release.reason}"
            if ok
            else f"canary {BAD_VERSION} ended {release.status}, not rolled back: {release.reason}",
            started,
            release=release.id,
            status=release.status,
        )

    def errors(self) -> None:
        started = system_clock.monotonic()
        try:
            import sentry_sdk  # noqa: F401
        except ImportError:
            self._record(
                "errors",
                False,
                "sentry-sdk is not installed: pip install 'controltower[demo]'",
                started,
            )
            return
        with self._step("sending errors through sentry-sdk"):
            done = subprocess.run(
                [sys.executable, "-m", "controltower.demo.errors", self.dsn, GOOD_VERSION],
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            issues = self._issues() if done.returncode == 0 else []
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            self._record("errors", False, f"could not send errors with sentry-sdk: {last}", started)
            return
        self._record(
            "errors",
            bool(issues),
            f"sent {done.stdout.strip()} errors through sentry-sdk: grouped into {len(issues)} issues",
            started,
            issues=len(issues),
        )

    def _issues(self) -> list[dict[str, Any]]:
        """Error issues as the dashboard shows them, read from the store after ingestion."""
        from sqlalchemy import select

        from controltower.store import Store
        from controltower.store.models.ingest import ErrorIssue

        end = system_clock.monotonic() + 15
        found: list[dict[str, Any]] = []
        with Store.open(root=self.workspace) as store:
            while system_clock.monotonic() < end:
                with store.session() as session:
                    rows = session.execute(select(ErrorIssue.title, ErrorIssue.count)).all()
                found = [{"title": title, "events": count} for title, count in rows]
                if len(found) >= 3:
                    break
                time.sleep(0.5)
        return found

    def incident(self) -> None:
        started = system_clock.monotonic()
        with self._step("waiting for the monitors to notice the search service is down"):
            end = system_clock.monotonic() + self.incident_wait
            seen = ""
            while system_clock.monotonic() < end and not seen:
                seen = next((line for line in self.notifications() if "search" in line), "")
                time.sleep(0.5)
        self._record(
            "incident",
            bool(seen),
            f"the search monitor opened an incident and notified: {seen}"
            if seen
            else "no incident notification arrived for the search monitor",
            started,
        )

    def notifications(self) -> list[str]:
        with self._lines_lock:
            return list(self._lines)

    def run(self) -> DemoSummary:
        self.start()
        self.first_release()
        self.check()
        self.good_canary()
        self.bad_canary()
        self.errors()
        self.incident()
        return self.summary()

    def summary(self) -> DemoSummary:
        totals = self.traffic.snapshot() if self.traffic else None
        traffic = (
            {
                "rate": self.rate,
                "requests": totals.requests,
                "failed": totals.failed,
                "by_status": dict(totals.by_status),
            }
            if totals
            else {}
        )
        return DemoSummary(
            workspace=str(self.workspace),
            dashboard=f"{self.server_url}/",
            status_page=f"{self.server_url}/status",
            api=f"{self.server_url}/api/",
            app=self.app_url,
            user=USER,
            password=self.password,
            dsn=self.dsn,
            steps=self.steps,
            traffic=traffic,
            notifications=self.notifications(),
        )

    def wait(self) -> None:
        """Keep everything up until Ctrl-C or SIGTERM."""
        done = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
        try:
            while not done.wait(0.5):
                if self.server is not None and self.server.poll() is not None:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)

    def close(self) -> None:
        """Stop the traffic, the app processes and their agent, tower serve and the receiver."""
        if self.traffic is not None:
            self.traffic.stop()
        if self.spec_path.exists():
            self._tower("deploy", "agent", "stop", "--spec", str(self.spec_path), timeout=60)
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(5)
        if self.receiver is not None:
            self.receiver.stop()
