"""Run the server inside another program: uvicorn in a background thread, on a real port.

``tower serve`` is the command; this is the same server for code that wants one
beside its own work (``tower demo``, tests, notebooks)::

    from controltower.server import start_server

    with start_server(spec, store, port=0) as server:   # 0: any free port
        server.add_user("demo", "a long password")      # a dashboard login
        dsn = server.dsn("web")                         # Sentry DSN of a project
        print(server.url)                               # http://127.0.0.1:<port>
        server.wait()                                   # until stop() or Ctrl-C

Leaving the ``with`` block (or ``stop()``) shuts the server down gracefully:
requests in flight finish, buffered error events are written, the monitors and
the dispatcher stop.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from controltower.clock import system_clock
from controltower.exceptions import TowerError, UsageError
from controltower.ingest.projects import dsn_for, ensure_project, load_projects
from controltower.server.app import create_app
from controltower.server.context import ServerContext
from controltower.spec import Spec
from controltower.store import Store
from controltower.typing import Clock


class _ThreadServer(uvicorn.Server):
    """uvicorn's server without signal handlers (the host program owns those)."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another port (0 picks a free one)",
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def local_url(host: str, port: int) -> str:
    """The URL this machine reaches a server on ``host:port`` at."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else "[::1]" if host == "::" else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


class RunningServer:
    """A server running in a background thread. ``url`` is where it answers."""

    def __init__(
        self,
        context: ServerContext,
        app: Starlette,
        server: uvicorn.Server,
        sock: socket.socket,
        host: str,
    ) -> None:
        self.context = context
        self.app = app
        self.port: int = sock.getsockname()[1]
        self.url = local_url(host, self.port)
        self._server = server
        self._socket = sock
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tower-serve", daemon=True)

    @property
    def store(self) -> Store:
        return self.context.store

    @property
    def public_url(self) -> str:
        """The URL DSNs and notification links carry: ``[server] public_url``, else ``url``."""
        return self.context.public_url or self.url

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # SystemExit when the lifespan fails to start
            self._failure = exc

    def _start(self, timeout: float) -> None:
        self._thread.start()
        deadline = system_clock.monotonic() + timeout
        delay = 0.01
        while not self._server.started:
            if not self._thread.is_alive():
                self._socket.close()
                raise TowerError(
                    "the server stopped while starting"
                    + (f" ({type(self._failure).__name__})" if self._failure else ""),
                    hint="its log above says why; often the store could not be opened",
                )
            if system_clock.monotonic() > deadline:
                self.stop()
                raise TowerError(f"the server did not start within {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def dsn(self, project: str, *, create: bool = True, rate_limit: int = 600) -> str:
        """The Sentry DSN of ``project``, created first (with ``rate_limit`` events a minute)
        unless ``create`` is false. It works at once: no restart needed."""
        if create:
            info = ensure_project(self.store, project, rate_limit=rate_limit)
        else:
            found = [p for p in load_projects(self.store) if p.name == project]
            if not found:
                raise UsageError(
                    f"there is no error-tracking project {project!r}",
                    hint="add it to [[server.projects]] in tower.toml",
                )
            info = found[0]
        return dsn_for(info, self.public_url)

    def add_user(self, name: str, password: str) -> None:
        """Let ``name`` log in to the dashboard with ``password`` (10 characters or more)."""
        from controltower.dashboard.auth import Accounts

        Accounts(self.store, clock=self.context.clock).add_user(name, password)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops or ``timeout`` passes; True if it stopped.

        Waits in short slices, so Ctrl-C (KeyboardInterrupt) reaches the caller.
        """
        deadline = None if timeout is None else system_clock.monotonic() + timeout
        while self._thread.is_alive():
            if deadline is not None and system_clock.monotonic() >= deadline:
                return False
            self._thread.join(0.25)
        return True

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully and wait for it (up to ``timeout``, by default the spec's
        ``shutdown_timeout`` plus a margin)."""
        if timeout is None:
            spec = self.context.spec
            timeout = (spec.server.shutdown_timeout if spec else 20.0) + 10.0
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5.0)
        self._socket.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_server(
    spec: Spec | None,
    store: Store,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    monitors: bool = True,
    notify: bool = True,
    dashboard: bool = True,
    clock: Clock = system_clock,
    log_level: str = "warning",
    ready_timeout: float = 30.0,
) -> RunningServer:
    """Start the whole server (API, ingestion, dashboard, status page, monitors,
    notifications) in a background thread and return once it answers.

    ``spec`` supplies ``[server]`` settings, projects, monitors and alert channels
    (None: defaults, no monitors). ``port=0`` picks a free port; see ``.url``.
    Projects in ``[[server.projects]]`` are created; ``.dsn(name)`` creates others.
    """
    from controltower.server.factory import prepare

    if spec is not None:
        context, _ = prepare(spec, store, clock=clock, monitors=monitors, notify=notify)
        context.dashboard = dashboard
    else:
        context = ServerContext.build(
            store, clock=clock, monitors=monitors, notify=notify, dashboard=dashboard
        )
    app = create_app(context)
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=int(spec.server.shutdown_timeout) if spec else 20,
    )
    running = RunningServer(context, app, _ThreadServer(config), sock, host)
    running._start(ready_timeout)
    return running
