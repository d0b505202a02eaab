"""``tower serve``: the API, error ingestion, health, metrics and background services."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from controltower.cli.common import (
    EnvOption,
    Format,
    FormatOption,
    SpecOption,
    console,
    emit_json,
    epilog,
    load,
)
from controltower.ingest.projects import dsn_for
from controltower.server.app import create_app
from controltower.server.factory import ENV_SPEC, open_store, prepare
from controltower.store import ENV_URL, redact_url


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
    format: FormatOption = Format.TEXT,
) -> None:
    """Serve the JSON API, Sentry-compatible ingestion and /metrics until stopped (Ctrl-C).

    Projects in [[server.projects]] are created with generated DSN keys. On
    SIGTERM or Ctrl-C the server stops taking requests, flushes buffered
    events to the store and stops its background services.
    """
    loaded = load(spec, env)
    store = open_store(loaded, database_url)
    context, projects = prepare(loaded, store)
    bind_host = host or loaded.server.host
    bind_port = loaded.server.port if port is None else port
    base = loaded.server.public_url or f"http://{bind_host}:{bind_port}"
    dsns = {project.name: dsn_for(project, base) for project in projects}
    if format is Format.JSON:
        emit_json(
            {
                "url": f"http://{bind_host}:{bind_port}",
                "store": redact_url(store.url),
                "workers": workers,
                "projects": dsns,
            }
        )
    else:
        for name, dsn in dsns.items():
            console.print(f"project {name}: DSN {dsn}", markup=False, soft_wrap=True)
        if not print_dsn:
            console.print(
                f"serving on http://{bind_host}:{bind_port} (store {redact_url(store.url)}, "
                f"{workers} worker{'s' if workers != 1 else ''}, {len(projects)} projects)",
                markup=False,
                soft_wrap=True,
            )
    if print_dsn:
        store.close()
        return
    timeout = int(loaded.server.shutdown_timeout)
    if workers > 1:
        store.close()
        os.environ[ENV_SPEC] = loaded.source
        os.environ[ENV_URL] = store.url
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
        )
        return
    config = uvicorn.Config(
        create_app(context),
        host=bind_host,
        port=bind_port,
        log_level=log_level,
        timeout_graceful_shutdown=timeout,
        server_header=False,
    )
    try:
        _Server(config).run()
    finally:
        store.close()
    console.print("stopped; buffered events were flushed", markup=False)


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
            ],
            "Exit codes: 0 stopped cleanly; 1 the store could not be opened; 2 invalid tower.toml.",
        ),
    )(serve)
