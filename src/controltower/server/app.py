"""The Starlette application of ``tower serve``: API, ingestion, dashboard, services.

``create_app(context)`` assembles the routes (health and metrics, the OpenAPI
document, the JSON API one module per resource, Sentry ingestion, heartbeat
pings, the dashboard and status page) and a lifespan that starts the background
services (the ingest writer always; the monitors and the notification
dispatcher when the spec has them and the context asks for them; the backup
schedule and RPO watch when ``[backup]`` names a database; anything in
``context.services`` or registered) and stops them, flushing the ingest buffer,
on shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.exc import DataError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from controltower.ingest import routes as ingest_routes
from controltower.ingest import uploads as upload_routes
from controltower.ingest.writer import IngestWriter
from controltower.server.api import api_routes
from controltower.server.context import ServerContext
from controltower.server.health import routes as health_routes
from controltower.server.services import Service, ServiceRunner, registered_services

log = logging.getLogger("controltower.server")
OPENAPI = Path(__file__).with_name("openapi.yaml")


async def openapi(request: Request) -> Response:
    return Response(OPENAPI.read_bytes(), media_type="application/yaml")


def build_services(context: ServerContext) -> list[Service]:
    """The services this server runs, in start order."""
    from controltower.backup.service import backup_service
    from controltower.server.workers import MonitorService, NotifyService

    services: list[Service] = []
    spec = context.spec
    if context.ingestion is not None:
        server = spec.server if spec is not None else None
        services.append(
            IngestWriter(
                context.store,
                context.ingestion.buffer,
                context.rules,
                batch_size=server.batch_size if server else 500,
                flush_interval=server.flush_interval if server else 0.2,
                clock=context.clock,
                metrics=context.ingestion.metrics,
                account=context.ingestion.ledger,
                spool=context.ingestion.spool,
                drain_timeout=max(1.0, 0.75 * (server.shutdown_timeout if server else 20.0)),
            )
        )
    if spec is not None and context.runs_monitors:
        services.append(MonitorService(spec, context.store, root=context.root, clock=context.clock))
    if spec is not None and context.runs_notify:
        services.append(NotifyService(spec, context.store, clock=context.clock))
    if spec is not None and context.deploys:
        from controltower.deploy.reconciler import DeployReconciler

        services.append(DeployReconciler(spec, context.store, clock=context.clock))
    if spec is not None and spec.server.heartbeat_url is not None:
        from controltower.server.watchdog import Watchdog

        services.append(
            Watchdog(
                spec.server.heartbeat_url.get_secret_value(),
                interval=spec.server.heartbeat_interval,
            )
        )
    if spec is not None and context.ingestion is not None:
        from controltower.ingest import retention

        if retention.wanted(spec):
            services.append(retention.EventRetention(spec, context.store, clock=context.clock))
    if context.runs_backups and (backups := backup_service(context)) is not None:
        services.append(backups)
    for name, factory in registered_services().items():
        service = factory(context)
        if service is not None:
            log.info("starting service %s", name)
            services.append(service)
    services.extend(context.services)
    return services


def _heartbeats(context: ServerContext) -> list[BaseRoute]:
    from controltower.monitor.heartbeat import heartbeat_routes
    from controltower.spec.monitors import MonitorType

    spec = context.spec
    if spec is None or not any(m.type is MonitorType.HEARTBEAT for m in spec.monitors):
        return []
    return list(heartbeat_routes(context.store, spec, clock=context.clock))


def _dashboard(context: ServerContext) -> list[BaseRoute]:
    if not context.dashboard:
        return []
    from controltower.dashboard.app import Dashboard

    dashboard = Dashboard(
        context.store,
        title=context.title,
        clock=context.clock,
        secure_cookies=context.public_url.startswith("https://"),
    )
    return dashboard.routes()


def create_app(context: ServerContext) -> Starlette:
    from controltower.ingest.projects import load_projects

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if context.ingestion is not None:
            context.ingestion.set_projects(load_projects(context.store))
        timeout = context.spec.server.shutdown_timeout if context.spec else 20.0
        runner = ServiceRunner(build_services(context), shutdown_timeout=timeout)
        app.state.runner = runner
        await runner.start()
        try:
            yield
        finally:
            await runner.shutdown()

    routes: list[BaseRoute] = [
        *ingest_routes.routes,  # first: the busiest routes are matched soonest
        *upload_routes.routes,
        *health_routes,
        Route("/api/openapi.yaml", openapi, methods=["GET"]),
        *api_routes(),
        *_heartbeats(context),
        *_dashboard(context),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            404: _not_found,
            405: _not_allowed,
            OverflowError: _out_of_range,
            DataError: _out_of_range,
        },
    )
    app.state.tower = context
    app.state.ingestion = context.ingestion
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": {"code": "not_found", "message": f"nothing at {request.url.path}"}},
        status_code=404,
    )


async def _out_of_range(request: Request, exc: Exception) -> Response:
    """A value from the request the store cannot take (an id past SQLite's 64-bit
    integers, or PostgreSQL's ``integer``): a number out of range names nothing, so 404
    as any id that does not exist; any other value the store refuses is 400."""
    orig = getattr(exc, "orig", None)
    if isinstance(exc, OverflowError) or type(orig).__name__ == "NumericValueOutOfRange":
        return JSONResponse(
            {"error": {"code": "not_found", "message": "no such id (out of range)"}},
            status_code=404,
        )
    log.warning("the store refused a value from %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"error": {"code": "invalid_parameter", "message": "a value the store cannot hold"}},
        status_code=400,
    )


async def _not_allowed(request: Request, exc: Exception) -> Response:
    allowed = getattr(exc, "headers", None) or {}
    return JSONResponse(
        {
            "error": {
                "code": "method_not_allowed",
                "message": f"{request.method} is not allowed here"
                + (f" (allowed: {allowed['Allow']})" if "Allow" in allowed else ""),
            }
        },
        status_code=405,
        headers={"Allow": allowed["Allow"]} if "Allow" in allowed else None,
    )
