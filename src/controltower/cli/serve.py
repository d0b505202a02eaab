"""``tower serve``: the API, error ingestion, health, metrics and background services."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from controltower.cli.common import (
    EXIT_FAILED,
    EnvOption,
    Format,
    FormatOption,
    SpecOption,
    console,
    emit_json,
    epilog,
    load,
)
from controltower.clock import system_clock
from controltower.dashboard.auth import Accounts
from controltower.exceptions import UsageError
from controltower.ingest.projects import dsn_for
from controltower.server.app import create_app
from controltower.server.context import ServerContext
from controltower.server.factory import ENV_SKIP, ENV_SPEC, open_store, prepare
from controltower.server.running import local_url
from controltower.store import ENV_URL, redact_url
from controltower.units import format_duration


def serve(
    spec: SpecOption = None,
    env: EnvOption = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: [server] host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default: [server] port).")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (use PostgreSQL with more than one).")
    ] = 1,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Store URL (default: [store] url or .tower/tower.db)."),
    ] = None,
    print_dsn: Annotated[
        bool, typer.Option("--print-dsn", help="Print each project's DSN and exit.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    monitors: Annotated[
        bool,
        typer.Option(
            "--monitors/--no-monitors",
            help="Run the [[monitors]] here (--no-monitors when `tower monitor` runs them).",
        ),
    ] = True,
    notify: Annotated[
        bool,
        typer.Option(
            "--notify/--no-notify",
            help="Deliver notifications to [alerts.channels] here (--no-notify when another "
            "process does).",
        ),
    ] = True,
    backups: Annotated[
        bool,
        typer.Option(
            "--backups/--no-backups",
            help="Run the [backup] schedule and RPO watch here (under a lease, so several "
            "servers back up once).",
        ),
    ] = True,
    dashboard: Annotated[
        bool,
        typer.Option(
            "--dashboard/--no-dashboard", help="Serve the dashboard and the public status page."
        ),
    ] = True,
    format: FormatOption = Format.TEXT,
) -> None:
    """Serve the API, error ingestion, dashboard, status page and /metrics, and run the
    monitors and notifications, until stopped (Ctrl-C or SIGTERM).

    Projects in [[server.projects]] are created with generated DSN keys. On
    SIGTERM or Ctrl-C the server stops taking requests, finishes those in
    flight, writes buffered error events to the store and stops its monitors
    and notification delivery.
    """
    loaded = load(spec, env)
    store = open_store(loaded, database_url)
    if workers > 1 and not store.is_postgres:
        store.close()
        raise UsageError(
            "several workers need a PostgreSQL store (SQLite takes one writer at a time)",
            hint="pass --database-url postgresql://... or set [store] url",
        )
    context, projects = prepare(loaded, store, monitors=monitors, notify=notify, backups=backups)
    context.dashboard = dashboard
    bind_host = host or loaded.server.host
    bind_port = loaded.server.port if port is None else port
    url = local_url(bind_host, bind_port)
    base = loaded.server.public_url or url
    dsns = {project.name: dsn_for(project, base) for project in projects}
    running = _running_parts(context)
    users = Accounts(store).users() if dashboard else []
    if format is Format.JSON:
        emit_json(
            {
                "url": url,
                "dashboard": f"{url}/" if dashboard else None,
                "status_page": f"{url}/status" if dashboard else None,
                "openapi": f"{url}/api/openapi.yaml",
                "store": redact_url(store.url),
                "workers": workers,
                "services": running,
                "projects": dsns,
            }
        )
    else:
        for name, dsn in dsns.items():
            console.print(f"project {name}: DSN {dsn}", markup=False, soft_wrap=True)
        if not print_dsn:
            console.print(
                f"serving on {url} (store {redact_url(store.url)}, "
                f"{workers} worker{'s' if workers != 1 else ''}, {len(projects)} projects; "
                f"running {', '.join(running)})",
                markup=False,
                soft_wrap=True,
            )
            if dashboard:
                console.print(
                    f"dashboard {url}/  status page {url}/status  API {url}/api/openapi.yaml",
                    markup=False,
                    soft_wrap=True,
                )
                if not users:
                    console.print(
                        "no dashboard users yet: tower user add NAME", markup=False, style="dim"
                    )
    if print_dsn:
        store.close()
        return
    timeout = int(loaded.server.shutdown_timeout)
    if workers > 1:
        store.close()
        os.environ[ENV_SPEC] = loaded.source
        os.environ[ENV_URL] = store.url
        os.environ[ENV_SKIP] = ",".join(
            part
            for part, on in (
                ("monitors", monitors),
                ("notify", notify),
                ("backups", backups),
                ("dashboard", dashboard),
            )
            if not on
        )
        if env:
            os.environ["TOWER_ENV"] = env
        uvicorn.run(
            "controltower.server.factory:from_environment",
            factory=True,
            host=bind_host,
            port=bind_port,
            workers=workers,
            log_level=log_level,
            timeout_graceful_shutdown=timeout,
            server_header=False,
            access_log=log_level in ("debug", "trace", "info"),
        )
        return
    config = uvicorn.Config(
        create_app(context),
        host=bind_host,
        port=bind_port,
        log_level=log_level,
        timeout_graceful_shutdown=timeout,
        server_header=False,
        access_log=log_level in ("debug", "trace", "info"),
    )
    started = system_clock.monotonic()
    try:
        _Server(config).run()
    finally:
        store.close()
    figures = context.ingestion.ledger.snapshot() if context.ingestion else {}
    left = figures.get("buffered", 0)
    if format is Format.TEXT:
        console.print(
            f"stopped after {format_duration(system_clock.monotonic() - started)}: "
            + _accounting_line(figures),
            markup=False,
        )
    if left:
        raise typer.Exit(EXIT_FAILED)


def _accounting_line(figures: dict[str, int]) -> str:
    """What happened to every accepted error event, for the stop summary."""
    if not figures:
        return "no error ingestion"
    parts = [f"{figures['accepted']} error events received"]
    if figures["replayed"]:
        parts.append(f"{figures['replayed']} replayed from the spool")
    parts.append(f"{figures['stored']} stored")
    if figures["dead_lettered"]:
        parts.append(f"{figures['dead_lettered']} dead-lettered (GET /api/v1/ingest/dead-letters)")
    if figures["spooled"]:
        parts.append(f"{figures['spooled']} spooled (written at the next start)")
    if figures["buffered"]:
        parts.append(f"{figures['buffered']} NOT stored (the store was unreachable)")
    return ", ".join(parts)


def _running_parts(context: ServerContext) -> list[str]:
    spec = context.spec
    parts = ["api", "ingest"]
    if context.dashboard:
        parts.append("dashboard")
    if spec is not None and context.runs_monitors:
        parts.append(f"{len(spec.monitors)} monitors")
    if context.runs_notify:
        parts.append("notifications")
    if context.runs_backups:
        parts.append("backups")
    return parts


class _Server(uvicorn.Server):
    """uvicorn's server, but SIGTERM/SIGINT end in a clean exit (0) after the graceful stop."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def register(app: typer.Typer) -> None:
    app.command(
        "serve",
        epilog=epilog(
            [
                "tower serve",
                "tower serve --port 8600 --env production",
                "tower serve --database-url postgresql://tower@db/tower --workers 2",
                "tower serve --print-dsn",
                "tower serve --no-monitors   # `tower monitor` workers run the monitors",
            ],
            "Exit codes: 0 stopped cleanly (events not written in time are spooled and written "
            "at the next start); 1 the store could not be opened, or buffered events could be "
            "neither written nor spooled at shutdown; 2 invalid tower.toml or options.",
        ),
    )(serve)
